# Doxygen input filter (cmake/Doxyfile.in): turns the essay comment that opens
# every public header, a plain /* */ comment, into the header's documentation,
# shown as written (verbatim, without the " * " margin). Lines are neither
# added nor removed, so warnings keep the header's line numbers. GNU sed: the
# 0,/re/ range ends at the first "*/" even when line 1 holds it.
1s|^/\* |/** @verbatim |
0,/\*\//{
  s|^ \*$||
  s|^ \* ||
  s|\*/$|@endverbatim @file */|
}
