#!/bin/bash
# aliyun-ops golden image update, run by Cloud Assistant on a temporary build instance (ecs_update_image).
# Replace it (or set update_command) with your own; keep it idempotent and non-interactive. It must exit 0.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
if command -v dnf >/dev/null 2>&1; then
  dnf -y upgrade --refresh
  dnf clean all
elif command -v yum >/dev/null 2>&1; then
  yum -y update
  yum clean all
elif command -v apt-get >/dev/null 2>&1; then
  apt-get update -q
  apt-get -y -q upgrade
  apt-get clean
else
  echo "no package manager found" >&2
  exit 1
fi
# leave no machine identity or history in the image
rm -f /etc/machine-id && touch /etc/machine-id
rm -rf /tmp/* /var/tmp/* /root/.bash_history
echo "updated: $(uname -r) at $(date -u +%FT%TZ)"
