#!/usr/bin/env bash
# check_header.sh LIB REPO - the public header compiles alone as C99, C11 and C++ with strict warnings,
# and preprocesses to plain C (no attributes: the export macro is empty outside the library build).
# The experimental block (tuning knobs outside the stable ABI) is visible only with TOKEMB_EXPERIMENTAL
# defined before the include, also when the header was included once without it.
set -euo pipefail
repo=$2
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
printf '#include <tokemb.h>\nint main(void) { return tokemb_version_number() == TOKEMB_VERSION_NUMBER ? 0 : 1; }\n' > "$tmp/a.c"
cp "$tmp/a.c" "$tmp/a.cpp"
printf '#include <tokemb.h>\n#define TOKEMB_EXPERIMENTAL\n#include <tokemb.h>\nint main(void) { return TOKEMB_NONTEMPORAL == 105 ? 0 : 1; }\n' > "$tmp/e.c"
cp "$tmp/e.c" "$tmp/e.cpp"
for std in c99 c11; do
  cc -std=$std -Wall -Wextra -Werror -pedantic -fsyntax-only -I"$repo/include" "$tmp/a.c"
  cc -std=$std -Wall -Wextra -Werror -pedantic -fsyntax-only -I"$repo/include" "$tmp/e.c"
done
c++ -std=c++11 -Wall -Wextra -Werror -pedantic -fsyntax-only -I"$repo/include" "$tmp/a.cpp"
c++ -std=c++11 -Wall -Wextra -Werror -pedantic -fsyntax-only -I"$repo/include" "$tmp/e.cpp"
printf '#include <tokemb.h>\nint main(void) { return TOKEMB_NONTEMPORAL; }\n' > "$tmp/n.c"
if cc -std=c11 -fsyntax-only -I"$repo/include" "$tmp/n.c" 2>/dev/null; then
  echo "FAIL: TOKEMB_NONTEMPORAL is visible without TOKEMB_EXPERIMENTAL"; exit 1
fi
printf '#include <tokemb.h>\nexport_macro_is[TOKEMB_API]\n' > "$tmp/m.c"
if ! cc -E -P -I"$repo/include" "$tmp/m.c" | grep -q '^export_macro_is\[ *\]$'; then
  echo "FAIL: TOKEMB_API does not expand to nothing outside the library build"; exit 1
fi
echo "ok: header compiles alone as C99, C11 and C++11 (with and without TOKEMB_EXPERIMENTAL) and preprocesses to plain C"
