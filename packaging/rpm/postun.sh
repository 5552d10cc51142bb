# amdgpu-cdi %postun: on erase ($1 = 0) delete the one generated spec this package writes; other
# vendors' specs and engine configurations stay.
if [ "$1" -eq 0 ]; then
    rm -f /var/run/cdi/amd.com-gpu.yaml
fi
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    udevadm control --reload >/dev/null 2>&1 || :
fi
