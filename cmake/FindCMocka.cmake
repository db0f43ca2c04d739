# FindCMocka: locate CMocka (the Debian 1.1 API) by header and library, so that
# a prefix of unpacked .deb files works as well as /usr. CMOCKA_ROOT (a CMake
# or an environment variable) is searched first: the usr/ of unpacked
# libcmocka-dev and libcmocka0 packages (dpkg -x PKG.deb DIR; CMOCKA_ROOT=DIR/usr),
# or DIR itself; CMAKE_PREFIX_PATH works too.
# Defines CMocka_FOUND and the imported target CMocka::cmocka.
set(_cmocka_roots ${CMOCKA_ROOT} $ENV{CMOCKA_ROOT})
find_path(CMOCKA_INCLUDE_DIR NAMES cmocka.h HINTS ${_cmocka_roots} PATH_SUFFIXES include usr/include)
find_library(CMOCKA_LIBRARY NAMES cmocka HINTS ${_cmocka_roots}
             PATH_SUFFIXES lib/${CMAKE_LIBRARY_ARCHITECTURE} lib64 lib
                           usr/lib/${CMAKE_LIBRARY_ARCHITECTURE} usr/lib)
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(CMocka REQUIRED_VARS CMOCKA_LIBRARY CMOCKA_INCLUDE_DIR)
if(CMocka_FOUND AND NOT TARGET CMocka::cmocka)
  add_library(CMocka::cmocka UNKNOWN IMPORTED)
  set_target_properties(CMocka::cmocka PROPERTIES
    IMPORTED_LOCATION "${CMOCKA_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${CMOCKA_INCLUDE_DIR}")
endif()
mark_as_advanced(CMOCKA_INCLUDE_DIR CMOCKA_LIBRARY)
