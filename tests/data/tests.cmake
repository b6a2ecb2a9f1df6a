# tests/data: the dataset readers, the restricted unpickler and the image decoder (src/data/, src/io/).
# Not the transforms' or the loader's tests. test_data_io compares decoding with PIL's
# (tests/golden/images*); test_data_datasets writes small archives of every format into /tmp
# and reads Debian's Fashion-MNIST (dataset-fashion-mnist) when it is installed.
add_library(relate_data_fixtures STATIC ${CMAKE_CURRENT_LIST_DIR}/data_fixtures.c)
target_link_libraries(relate_data_fixtures PUBLIC relate_test_util)
relate_add_test(test_data_io ${CMAKE_CURRENT_LIST_DIR}/test_data_io.c)
target_link_libraries(test_data_io PRIVATE relate_data_fixtures)
relate_add_test(test_data_datasets ${CMAKE_CURRENT_LIST_DIR}/test_datasets.c)
target_link_libraries(test_data_datasets PRIVATE relate_data_fixtures)
relate_add_test(test_resize ${CMAKE_CURRENT_LIST_DIR}/test_resize.c)
relate_add_test(test_download ${CMAKE_CURRENT_LIST_DIR}/test_download.c)
target_link_libraries(test_download PRIVATE PkgConfig::LIBARCHIVE)
relate_add_test(test_folder_layouts ${CMAKE_CURRENT_LIST_DIR}/test_folder_layouts.c)
target_link_libraries(test_folder_layouts PRIVATE relate_data_fixtures)
