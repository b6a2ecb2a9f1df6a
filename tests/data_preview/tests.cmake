# tests/data_preview: `relate data --preview`'s grid (src/data/preview.c, relate/preview.h): layout,
# originals, views equal to what the loader feeds, rotations, determinism, PNG round trip, errors.
# Not the transforms' or the loader's own tests. The source lives with the data tests.
relate_add_test(test_preview ${CMAKE_CURRENT_LIST_DIR}/../data/test_preview.c)
# The labelled preview the CLI draws with cairo (src/cli/draw_preview.c) on image folders and real
# Fashion-MNIST: page size, every cell equal to the bare grid's (PIL), text bands, flag errors.
add_test(NAME e2e_preview COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/e2e_preview.sh $<TARGET_FILE:relate_cli>)
set_tests_properties(e2e_preview PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=2" LABELS e2e)
