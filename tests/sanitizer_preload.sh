# sanitizer_preload.sh - sourced by the check_*.sh scripts that load the built library into python:
# sets $preload to the sanitizer runtimes a sanitizer build of "$lib" needs first (empty otherwise).
preload=""
for rt in asan ubsan tsan; do
  if readelf -d "$lib" 2>/dev/null | grep -q "NEEDED.*lib$rt\.so"; then
    f=$(gcc -print-file-name="lib$rt.so" 2>/dev/null || true)
    [ -n "$f" ] && [ -e "$f" ] && preload="$preload $f"
  fi
done
preload="${preload# }"
