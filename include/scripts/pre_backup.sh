#!/bin/bash
# aliyun-ops pre-backup hook, run by Cloud Assistant before the image is taken.
# Flushes file-system buffers and runs site hooks in /etc/aliyun-ops/pre-backup.d (e.g. stop writes,
# FLUSH TABLES WITH READ LOCK). A non-zero exit marks this instance failed; it is not imaged.
set -euo pipefail
for hook in /etc/aliyun-ops/pre-backup.d/*; do
  [ -x "$hook" ] && "$hook"
done
sync
echo "pre-backup done on $(hostname) at $(date -u +%FT%TZ)"
