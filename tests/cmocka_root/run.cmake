# run.cmake: prove that CMOCKA_ROOT finds CMocka in an unpacked Debian
# package (what a machine without a package manager has, e.g. our GPU
# machine: dpkg -x libcmocka0_*.deb libcmocka-dev_*.deb DIR). Builds such a
# prefix from the CMocka this build found (header, libcmocka.so.0 and the
# libcmocka.so link, in Debian's multiarch layout), then configures, builds
# and runs tests/cmocka_root twice: with -DCMOCKA_ROOT=DIR/usr, and with the
# environment variable CMOCKA_ROOT=DIR (the unpack directory itself). Each
# must find the prefix's copy, not the system's, and load it at run time.
#   cmake -DSOURCE_DIR=... -DWORK_DIR=... -DCMOCKA_LIBRARY=... -DCMOCKA_INCLUDE_DIR=...
#         -DARCH=x86_64-linux-gnu -DC_COMPILER=cc -P run.cmake
foreach(var SOURCE_DIR WORK_DIR CMOCKA_LIBRARY CMOCKA_INCLUDE_DIR C_COMPILER)
  if(NOT ${var})
    message(FATAL_ERROR "run.cmake needs -D${var}=...")
  endif()
endforeach()
file(REMOVE_RECURSE "${WORK_DIR}")
set(unpacked "${WORK_DIR}/unpacked")
if(ARCH)
  set(libdir "${unpacked}/usr/lib/${ARCH}")
else()
  set(libdir "${unpacked}/usr/lib")
endif()
file(MAKE_DIRECTORY "${unpacked}/usr/include" "${libdir}")
file(COPY "${CMOCKA_INCLUDE_DIR}/cmocka.h" DESTINATION "${unpacked}/usr/include")
get_filename_component(real "${CMOCKA_LIBRARY}" REALPATH)
configure_file("${real}" "${libdir}/libcmocka.so.0" COPYONLY)
file(CREATE_LINK libcmocka.so.0 "${libdir}/libcmocka.so" SYMBOLIC)

foreach(mode variable environment)
  set(build "${WORK_DIR}/build-${mode}")
  if(mode STREQUAL "variable")
    set(cmd ${CMAKE_COMMAND} -E env --unset=CMOCKA_ROOT ${CMAKE_COMMAND} "-DCMOCKA_ROOT=${unpacked}/usr")
  else()
    set(cmd ${CMAKE_COMMAND} -E env "CMOCKA_ROOT=${unpacked}" ${CMAKE_COMMAND})
  endif()
  execute_process(COMMAND ${cmd} -S "${SOURCE_DIR}/tests/cmocka_root" -B "${build}"
                          "-DGPUMEM_CMAKE_DIR=${SOURCE_DIR}/cmake" "-DCMAKE_C_COMPILER=${C_COMPILER}"
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${mode}: configure failed:\n${out}\n${err}")
  endif()
  file(STRINGS "${build}/CMakeCache.txt" lib REGEX "^CMOCKA_LIBRARY:")
  file(STRINGS "${build}/CMakeCache.txt" inc REGEX "^CMOCKA_INCLUDE_DIR:")
  string(FIND "${lib}" "${unpacked}/" at_lib)
  string(FIND "${inc}" "${unpacked}/" at_inc)
  if(NOT at_lib GREATER -1 OR NOT at_inc GREATER -1)
    message(FATAL_ERROR "${mode}: CMOCKA_ROOT was not used: ${lib}; ${inc}")
  endif()
  execute_process(COMMAND ${CMAKE_COMMAND} --build "${build}" RESULT_VARIABLE rc OUTPUT_VARIABLE out
                  ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${mode}: build failed:\n${out}\n${err}")
  endif()
  execute_process(COMMAND "${build}/cmocka_root_check" RESULT_VARIABLE rc OUTPUT_VARIABLE out
                  ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${mode}: the program failed (${rc}):\n${out}\n${err}")
  endif()
  string(FIND "${out}" "libcmocka loaded from ${libdir}/" at_run)
  if(NOT at_run GREATER -1)
    message(FATAL_ERROR "${mode}: the program did not load the prefix's libcmocka:\n${out}")
  endif()
  message(STATUS "${mode}: ${lib}")
endforeach()
message(STATUS "cmocka_root ok")
