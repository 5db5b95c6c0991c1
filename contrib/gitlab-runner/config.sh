#!/usr/bin/env bash
# config_exec: where the job's files live inside the job container, and the driver.
set -euo pipefail
cat <<JSON
{
  "builds_dir": "/builds",
  "cache_dir": "/cache",
  "builds_dir_is_shared": false,
  "hostname": "$(hostname)",
  "driver": {"name": "dindstore", "version": "$( (${DINDSTORE:-dindstore} --version 2>/dev/null || echo unknown) | awk '{print $NF; exit}')"}
}
JSON
