#!/usr/bin/env bash
# check_header.sh LIB REPO - the public header compiles alone as C99, C11 and C++ with strict warnings,
# and preprocesses to plain C (no attributes: the export macro is empty outside the library build).
set -euo pipefail
repo=$2
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
printf '#include <tokemb.h>\nint main(void) { return tokemb_version_number() == TOKEMB_VERSION_NUMBER ? 0 : 1; }\n' > "$tmp/a.c"
cp "$tmp/a.c" "$tmp/a.cpp"
for std in c99 c11; do
  cc -std=$std -Wall -Wextra -Werror -pedantic -fsyntax-only -I"$repo/include" "$tmp/a.c"
done
c++ -std=c++11 -Wall -Wextra -Werror -pedantic -fsyntax-only -I"$repo/include" "$tmp/a.cpp"
printf '#include <tokemb.h>\nexport_macro_is[TOKEMB_API]\n' > "$tmp/m.c"
if ! cc -E -P -I"$repo/include" "$tmp/m.c" | grep -q '^export_macro_is\[ *\]$'; then
  echo "FAIL: TOKEMB_API does not expand to nothing outside the library build"; exit 1
fi
echo "ok: header compiles alone as C99, C11 and C++11 and preprocesses to plain C"
