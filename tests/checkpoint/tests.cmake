# tests/checkpoint: relate's torch.save checkpoints (src/checkpoint/torch_checkpoint.c, zip_stored.c,
# pickle_write.c). Not the training loop's resume logic.
# test_checkpoint needs nothing but the library. test_checkpoint_torch runs torch_interop.py with
# /usr/bin/python3 (the interpreter that has torch): it loads files written by
# test_checkpoint_writer into PyTorch modules and optimizers, and has test_checkpoint_reader read
# files that torch.save wrote in both formats. Without python3 or torch it reports SKIPPED (77).
relate_add_test(test_checkpoint ${CMAKE_CURRENT_LIST_DIR}/test_checkpoint.c)

add_executable(test_checkpoint_writer ${CMAKE_CURRENT_LIST_DIR}/checkpoint_writer.c)
target_link_libraries(test_checkpoint_writer PRIVATE relate_test_util)
add_executable(test_checkpoint_reader ${CMAKE_CURRENT_LIST_DIR}/checkpoint_reader.c)
target_link_libraries(test_checkpoint_reader PRIVATE relate_test_util)

add_test(NAME test_checkpoint_torch
  COMMAND sh -c "if [ -x /usr/bin/python3 ]; then exec /usr/bin/python3 \"$0\" \"$@\"; else echo 'SKIPPED: no /usr/bin/python3'; exit 77; fi"
    ${CMAKE_CURRENT_LIST_DIR}/torch_interop.py
    --writer $<TARGET_FILE:test_checkpoint_writer>
    --reader $<TARGET_FILE:test_checkpoint_reader>
    --tools ${PROJECT_SOURCE_DIR}/tools)
set_tests_properties(test_checkpoint_torch PROPERTIES SKIP_RETURN_CODE 77 ENVIRONMENT "OMP_NUM_THREADS=2")
