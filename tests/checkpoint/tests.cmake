# tests/checkpoint: relate's torch.save checkpoints (src/checkpoint/checkpoint_*.c, zip_stored.c,
# pickle_write.c). Not the training loop's resume logic.
# test_checkpoint needs nothing but the library. test_checkpoint_torch runs torch_interop.py with
# /usr/bin/python3 (the interpreter that has torch): it loads files written by
# test_checkpoint_writer into PyTorch modules and optimizers, and has test_checkpoint_reader read
# files that torch.save wrote in both formats. Without python3 or torch it reports SKIPPED (77),
# without torchvision it leaves out the resnet34 round trip, and both say what to install; with
# RELATE_REQUIRE_ALL=1 in the environment (CI sets it; ctest passes its environment through,
# ENVIRONMENT below only adds to it) each of those is a failure instead.
# One executable from several files: main (test_checkpoint.c) runs the themed checks of ckpt_*.c
# in one scratch folder, with the helpers and file writers of ckpt_fixtures.c.
relate_add_test(test_checkpoint ${CMAKE_CURRENT_LIST_DIR}/test_checkpoint.c
  ${CMAKE_CURRENT_LIST_DIR}/ckpt_fixtures.c
  ${CMAKE_CURRENT_LIST_DIR}/ckpt_roundtrip.c
  ${CMAKE_CURRENT_LIST_DIR}/ckpt_handbuilt.c
  ${CMAKE_CURRENT_LIST_DIR}/ckpt_allow_list.c
  ${CMAKE_CURRENT_LIST_DIR}/ckpt_damaged.c)

add_executable(test_checkpoint_writer ${CMAKE_CURRENT_LIST_DIR}/checkpoint_writer.c)
target_link_libraries(test_checkpoint_writer PRIVATE relate_test_util)
add_executable(test_checkpoint_reader ${CMAKE_CURRENT_LIST_DIR}/checkpoint_reader.c)
target_link_libraries(test_checkpoint_reader PRIVATE relate_test_util)

add_test(NAME test_checkpoint_torch
  COMMAND sh -c "if [ -x /usr/bin/python3 ]; then exec /usr/bin/python3 \"$0\" \"$@\"; fi; if [ \"$RELATE_REQUIRE_ALL\" = 1 ]; then echo 'FAIL: no /usr/bin/python3 and RELATE_REQUIRE_ALL=1 forbids skipping (install: apt-get install python3 python3-torch python3-torchvision)'; exit 1; fi; echo 'SKIPPED: no /usr/bin/python3 (install: apt-get install python3 python3-torch python3-torchvision; RELATE_REQUIRE_ALL=1 makes this a failure)'; exit 77"
    ${CMAKE_CURRENT_LIST_DIR}/torch_interop.py
    --writer $<TARGET_FILE:test_checkpoint_writer>
    --reader $<TARGET_FILE:test_checkpoint_reader>
    --tools ${PROJECT_SOURCE_DIR}/tools)
set_tests_properties(test_checkpoint_torch PROPERTIES SKIP_RETURN_CODE 77 ENVIRONMENT "OMP_NUM_THREADS=2")
