# tests/data_preview: `relate data --preview`'s grid (src/data/preview.c, relate/preview.h): layout,
# originals, views equal to what the loader feeds, rotations, determinism, PNG round trip, errors.
# Not the transforms' or the loader's own tests. The source lives with the data tests.
relate_add_test(test_preview ${CMAKE_CURRENT_LIST_DIR}/../data/test_preview.c)
