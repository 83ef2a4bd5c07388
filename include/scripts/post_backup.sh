#!/bin/bash
# aliyun-ops post-backup hook, run by Cloud Assistant after the image was taken (even if it failed):
# runs site hooks in /etc/aliyun-ops/post-backup.d to resume what pre-backup paused.
set -euo pipefail
for hook in /etc/aliyun-ops/post-backup.d/*; do
  [ -x "$hook" ] && "$hook"
done
echo "post-backup done on $(hostname) at $(date -u +%FT%TZ)"
