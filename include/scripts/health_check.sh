#!/bin/bash
# aliyun-ops health check, run by Cloud Assistant after a restore (and by backup verification): exits non-zero
# when the restored system is not fit to serve. Site checks in /etc/aliyun-ops/health.d run too.
set -uo pipefail
fail=0
# wait (up to 5 minutes) for the boot to finish: right after a start systemd says "starting"; an old systemd
# without --wait prints nothing on stdout, and the plain state is read instead
state=$(timeout 300 systemctl is-system-running --wait 2>/dev/null || true)
[ -n "$state" ] || state=$(systemctl is-system-running 2>/dev/null || true)
case "$state" in
  running|"") ;;
  degraded) echo "systemd is degraded:"; systemctl --failed --no-legend 2>/dev/null | head -20; fail=1 ;;
  *) echo "systemd state: $state"; fail=1 ;;   # starting/initializing: the caller retries and says "still booting"
esac
if ! touch /var/tmp/.aliyun-ops-health 2>/dev/null; then echo "root file system is not writable"; fail=1; fi
rm -f /var/tmp/.aliyun-ops-health
for hook in /etc/aliyun-ops/health.d/*; do
  [ -x "$hook" ] || continue
  "$hook" || { echo "site check $hook failed"; fail=1; }
done
[ "$fail" -eq 0 ] && echo "healthy: $(hostname) at $(date -u +%FT%TZ)"
exit "$fail"
