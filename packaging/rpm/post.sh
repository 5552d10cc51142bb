# amdgpu-cdi %post: enable the spec refresh at boot and run it once if systemd is running.
# Never fails on a machine without an AMD GPU: the unit is skipped when /dev/kfd is missing.
if command -v systemctl >/dev/null 2>&1; then
    systemctl enable amdgpu-cdi-refresh.service >/dev/null 2>&1 || :
fi
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    udevadm control --reload >/dev/null 2>&1 || :
    systemctl --no-block start amdgpu-cdi-refresh.service >/dev/null 2>&1 || :
fi
