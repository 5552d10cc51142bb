# amdgpu-cdi %preun: on erase ($1 = 0; not on upgrade) disable the spec refresh.
if [ "$1" -eq 0 ] && command -v systemctl >/dev/null 2>&1; then
    systemctl disable amdgpu-cdi-refresh.service >/dev/null 2>&1 || :
fi
