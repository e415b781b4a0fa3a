# Every dependency is a Debian package installed by scripts/setup.sh.
find_package(Threads REQUIRED)
find_package(MPI REQUIRED COMPONENTS CXX)
find_package(HDF5 REQUIRED COMPONENTS C)
find_package(Boost 1.74 REQUIRED COMPONENTS program_options)
find_package(nlohmann_json 3.10 REQUIRED)
find_package(GTest REQUIRED)

# OpenBLAS (CBLAS) and LAPACKE for the CPU backend.
set(BLA_VENDOR OpenBLAS)
find_package(BLAS REQUIRED)
find_path(QSHARD_CBLAS_INCLUDE_DIR cblas.h
          PATHS /usr/include/x86_64-linux-gnu/openblas-pthread /usr/include/openblas
          REQUIRED)
find_path(QSHARD_LAPACKE_INCLUDE_DIR lapacke.h REQUIRED)
find_library(QSHARD_LAPACKE_LIBRARY lapacke REQUIRED)
add_library(qshard_blas INTERFACE)
target_include_directories(qshard_blas INTERFACE ${QSHARD_CBLAS_INCLUDE_DIR}
                                                 ${QSHARD_LAPACKE_INCLUDE_DIR})
target_link_libraries(qshard_blas INTERFACE ${QSHARD_LAPACKE_LIBRARY} ${BLAS_LIBRARIES})

add_library(qshard_hdf5 INTERFACE)
target_include_directories(qshard_hdf5 INTERFACE ${HDF5_C_INCLUDE_DIRS} ${HDF5_INCLUDE_DIRS})
target_link_libraries(qshard_hdf5 INTERFACE ${HDF5_C_LIBRARIES} ${HDF5_LIBRARIES})
target_compile_definitions(qshard_hdf5 INTERFACE ${HDF5_DEFINITIONS})
