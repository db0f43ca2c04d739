# Install the build tree into a scratch prefix, then build the consumer
# project against it with find_package(gpumem) and with pkg-config, and run
# what was built.
file(REMOVE_RECURSE ${WORK_DIR})
set(prefix ${WORK_DIR}/prefix)
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  set(last_output "${out}" PARENT_SCOPE)
endfunction()

run(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})
run(${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/consumer -B ${WORK_DIR}/build
    "-DCMAKE_PREFIX_PATH=${prefix};${CMAKE_PREFIX_PATH_ARG}" -DCMAKE_C_COMPILER=${C_COMPILER}
    "-DCMAKE_C_FLAGS=${EXTRA_FLAGS}" "-DCMAKE_EXE_LINKER_FLAGS=${EXTRA_FLAGS}")
run(${CMAKE_COMMAND} --build ${WORK_DIR}/build)
foreach(exe consumer_shared consumer_static)
  run(${WORK_DIR}/build/${exe})
  if(NOT last_output MATCHES "^consumer ")
    message(FATAL_ERROR "${exe} printed '${last_output}'")
  endif()
  message("${exe}: ${last_output}")
endforeach()

# pkg-config: compile and link the same program from the .pc file alone.
find_program(PKG_CONFIG pkg-config)
if(PKG_CONFIG)
  file(GLOB pcdir LIST_DIRECTORIES true ${prefix}/lib*/pkgconfig)
  set(ENV{PKG_CONFIG_PATH} "${pcdir}")
  run(${PKG_CONFIG} --cflags --libs gpumem)
  string(STRIP "${last_output}" flags)
  separate_arguments(flags UNIX_COMMAND "${flags}")
  file(GLOB libdir LIST_DIRECTORIES true ${prefix}/lib*)
  separate_arguments(extra UNIX_COMMAND "${EXTRA_FLAGS}")
  run(${C_COMPILER} ${extra} ${SOURCE_DIR}/tests/consumer/main.c ${flags} -Wl,-rpath,${libdir}
      -o ${WORK_DIR}/consumer_pc)
  run(${WORK_DIR}/consumer_pc)
  message("consumer_pc (pkg-config): ${last_output}")
else()
  message("pkg-config not found: the .pc check was not run")
endif()
