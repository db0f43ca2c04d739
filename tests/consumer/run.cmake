# The install-and-consume test (ctest consumer.find_package): install the
# build tree into a scratch prefix, as a user would, and check what a user of
# that prefix gets.
#   1. The installed program starts: prefix/bin/gpumem-info --help, with no
#      LD_LIBRARY_PATH, finds libgpumem.so through its RUNPATH $ORIGIN/<bin to
#      lib> (readelf shows it).
#   2. CMake, shared: the consumer project (tests/consumer) is configured with
#      find_package(gpumem) and no CUDA toolkit in sight: no nvcc on PATH, no
#      toolkit in CMAKE_PREFIX_PATH, CUDAToolkit_ROOT pointing nowhere, and
#      CMAKE_DISABLE_FIND_PACKAGE_CUDAToolkit, since on a machine with the
#      toolkit the system prefixes (/usr/local/bin/nvcc, /usr/local/cuda)
#      would still be searched. The program links libgpumem.so and not
#      libcudart (readelf), and runs.
#   3. CMake, static: find_package(gpumem COMPONENTS static) with the
#      toolkit; the program links no libgpumem.so, and runs.
#   4. pkg-config: the same program from gpumem.pc (shared, no CUDA flags)
#      and from gpumem-static.pc (the archive), each checked as above.
# Arguments (-D): SOURCE_DIR, BUILD_DIR, WORK_DIR, C_COMPILER, EXTRA_FLAGS
# (this build's sanitizer flags, which the installed libraries carry),
# CMAKE_PREFIX_PATH_ARG, BINDIR and LIBDIR (CMAKE_INSTALL_BINDIR/LIBDIR),
# READELF, PKG_CONFIG, CHECK_INFO (whether gpumem-info was built).
foreach(arg SOURCE_DIR BUILD_DIR WORK_DIR C_COMPILER BINDIR LIBDIR READELF PKG_CONFIG)
  if(NOT ${arg})
    message(FATAL_ERROR "consumer test: ${arg} is not set (readelf and pkg-config are needed)")
  endif()
endforeach()
foreach(dir BINDIR LIBDIR)
  if(IS_ABSOLUTE "${${dir}}")
    message(FATAL_ERROR "consumer test: CMAKE_INSTALL_${dir} '${${dir}}' is absolute, "
                        "so an install to a scratch prefix would write outside it")
  endif()
endforeach()
file(REMOVE_RECURSE ${WORK_DIR})
set(prefix ${WORK_DIR}/prefix)
set(libdir ${prefix}/${LIBDIR})
separate_arguments(extra UNIX_COMMAND "${EXTRA_FLAGS}")

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    string(REPLACE ";" " " cmd "${ARGN}")
    message(FATAL_ERROR "failed (${rc}): ${cmd}\n${out}\n${err}")
  endif()
  set(last_output "${out}" PARENT_SCOPE)
endfunction()

# dynamic(<file> <var>): the file's dynamic section as readelf prints it.
function(dynamic file var)
  run(${READELF} -d ${file})
  set(${var} "${last_output}" PARENT_SCOPE)
endfunction()

# check_program(<exe> <link>): run it, then check its output and which
# libgpumem it loads: link "shared" needs libgpumem.so and not libcudart
# (libgpumem.so brings its own), "static" needs no libgpumem.so.
function(check_program exe link)
  run(${CMAKE_COMMAND} -E env --unset=LD_LIBRARY_PATH ${exe})
  if(NOT last_output MATCHES "^consumer [0-9.]+ ${link}\n$")
    message(FATAL_ERROR "${exe} printed '${last_output}', not 'consumer <version> ${link}'")
  endif()
  dynamic(${exe} dyn)
  if(link STREQUAL "shared" AND (NOT dyn MATCHES "NEEDED[^\n]*libgpumem\\.so" OR
                                 dyn MATCHES "NEEDED[^\n]*libcudart"))
    message(FATAL_ERROR "${exe} should need libgpumem.so and not libcudart:\n${dyn}")
  elseif(link STREQUAL "static" AND dyn MATCHES "NEEDED[^\n]*libgpumem\\.so")
    message(FATAL_ERROR "${exe} links libgpumem.so, not the archive:\n${dyn}")
  endif()
  string(STRIP "${last_output}" printed)
  get_filename_component(name ${exe} NAME)
  message("${name}: ${printed}")
endfunction()

run(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})

# 1. The installed program, with the library found only through its RUNPATH
# (built unless GPUMEM_BUILD_TOOLS is off).
if(CHECK_INFO)
  set(info ${prefix}/${BINDIR}/gpumem-info)
  execute_process(COMMAND ${CMAKE_COMMAND} -E env --unset=LD_LIBRARY_PATH ${info} --help
                  WORKING_DIRECTORY ${WORK_DIR} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0 OR NOT out MATCHES "gpumem-info")
    message(FATAL_ERROR "installed gpumem-info --help exited ${rc}:\n${out}${err}")
  endif()
  file(RELATIVE_PATH bin_to_lib ${prefix}/${BINDIR} ${libdir})
  dynamic(${info} dyn)
  string(REGEX MATCH "\\((RUNPATH|RPATH)\\)[^\n]*: \\[([^\n]*)\\]" found "${dyn}")
  set(run_path "${CMAKE_MATCH_2}")
  if(NOT run_path STREQUAL "$ORIGIN/${bin_to_lib}")
    message(FATAL_ERROR "installed gpumem-info: run path '${run_path}', "
                        "want '$ORIGIN/${bin_to_lib}':\n${dyn}")
  endif()
  message("gpumem-info --help: exit 0, ${CMAKE_MATCH_1} ${run_path}")
endif()

# 2. CMake, shared, no CUDA toolkit: drop every PATH entry holding an nvcc
# and every prefix naming CUDA, and unset the toolkit's variables.
string(REPLACE ":" ";" path_entries "$ENV{PATH}")
set(path_no_cuda "")
foreach(dir ${path_entries})
  if(NOT EXISTS ${dir}/nvcc)
    list(APPEND path_no_cuda ${dir})
  endif()
endforeach()
string(REPLACE ";" ":" path_no_cuda "${path_no_cuda}")
set(prefixes_no_cuda ${prefix})
foreach(dir ${CMAKE_PREFIX_PATH_ARG})
  string(TOLOWER "${dir}" lower)
  if(NOT lower MATCHES "cuda")
    list(APPEND prefixes_no_cuda ${dir})
  endif()
endforeach()
set(consumer_flags -DCMAKE_C_COMPILER=${C_COMPILER} "-DCMAKE_C_FLAGS=${EXTRA_FLAGS}"
                   "-DCMAKE_EXE_LINKER_FLAGS=${EXTRA_FLAGS}")
run(${CMAKE_COMMAND} -E env --unset=CUDA_PATH --unset=CUDA_HOME --unset=CUDA_ROOT
    --unset=CUDAToolkit_ROOT --unset=CUDACXX "PATH=${path_no_cuda}"
    ${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/consumer -B ${WORK_DIR}/shared -DCONSUMER_LINK=shared
    "-DCMAKE_PREFIX_PATH=${prefixes_no_cuda}" -DCUDAToolkit_ROOT=${WORK_DIR}/no-cuda-toolkit
    -DCMAKE_DISABLE_FIND_PACKAGE_CUDAToolkit=ON ${consumer_flags})
run(${CMAKE_COMMAND} --build ${WORK_DIR}/shared)
check_program(${WORK_DIR}/shared/consumer_shared shared)

# 3. CMake, static: the component finds CUDAToolkit for libcudart.
run(${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/consumer -B ${WORK_DIR}/static -DCONSUMER_LINK=static
    "-DCMAKE_PREFIX_PATH=${prefix};${CMAKE_PREFIX_PATH_ARG}" ${consumer_flags})
run(${CMAKE_COMMAND} --build ${WORK_DIR}/static)
check_program(${WORK_DIR}/static/consumer_static static)

# 4. pkg-config: compile and link the same program from the .pc files alone.
set(ENV{PKG_CONFIG_PATH} "${libdir}/pkgconfig")
foreach(module gpumem gpumem-static)
  if(module STREQUAL "gpumem")
    set(link shared)
    run(${PKG_CONFIG} --cflags --libs gpumem)
    if(last_output MATCHES "cuda")
      message(FATAL_ERROR "gpumem.pc names CUDA for a shared link: ${last_output}")
    endif()
  else()
    set(link static)
    run(${PKG_CONFIG} --cflags --libs gpumem-static)
  endif()
  string(STRIP "${last_output}" flags)
  separate_arguments(flags UNIX_COMMAND "${flags}")
  run(${C_COMPILER} ${extra} ${SOURCE_DIR}/tests/consumer/main.c ${flags} -Wl,-rpath,${libdir}
      -o ${WORK_DIR}/consumer_pc_${link})
  check_program(${WORK_DIR}/consumer_pc_${link} ${link})
endforeach()
