# The git commit is recorded in every checkpoint's provenance.
execute_process(COMMAND git rev-parse --short=12 HEAD WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}
                OUTPUT_VARIABLE QSHARD_GIT_COMMIT OUTPUT_STRIP_TRAILING_WHITESPACE
                ERROR_QUIET RESULT_VARIABLE _git_rc)
if(NOT _git_rc EQUAL 0 OR QSHARD_GIT_COMMIT STREQUAL "")
  set(QSHARD_GIT_COMMIT "unknown")
endif()
