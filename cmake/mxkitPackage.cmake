# `cmake --install build --prefix P`: the library (headers and static libraries of core, CPU
# kernels and io, and the CUDA kernels when built), the `mx` command, a CMake package and a
# pkg-config file:
#   find_package(mxkit)  ->  mxkit::mxkit (core + kernels_cpu + io), with CUDA also mxkit::cuda
#                            (quantizers), mxkit::gemm_cuda (MX products on Hopper) and
#                            mxkit::gemm_cublaslt (MX products through cuBLASLt: block-scaled
#                            on Blackwell, dequantized to BF16 on any GPU, and the choice of
#                            route at run time; with mxkit::cublaslt: cuBLASLt opened on first
#                            use, not linked)
#   pkg-config mxkit     ->  the flags of mxkit::mxkit
# The installed libraries depend on the C++ standard library and threads alone (CUDA's runtime
# for mxkit::cuda): the command line's CLI11, fmt and SentencePiece stay with the `mx` target.
include(CMakePackageConfigHelpers)

add_library(mxkit INTERFACE)
target_link_libraries(mxkit INTERFACE mx_core mx_kernels_cpu mx_io)
add_library(mxkit::mxkit ALIAS mxkit)

set(MX_PACKAGE_TARGETS mxkit mx_core mx_kernels_cpu mx_io)
set(MX_PACKAGE_HEADER_DIRS core kernels/cpu io)
if(TARGET mx_kernels_cuda)
  list(APPEND MX_PACKAGE_TARGETS mx_kernels_cuda)
  list(APPEND MX_PACKAGE_HEADER_DIRS kernels/cuda)
  add_library(mxkit::cuda ALIAS mx_kernels_cuda)
  list(APPEND MX_PACKAGE_TARGETS mx_gemm_cuda mx_gemm_cublaslt mx_cublaslt mx_library_loader)
  add_library(mxkit::gemm_cuda ALIAS mx_gemm_cuda)
  add_library(mxkit::gemm_cublaslt ALIAS mx_gemm_cublaslt)
  add_library(mxkit::cublaslt ALIAS mx_cublaslt)
  set(MX_PACKAGE_HAS_CUDA ON)
else()
  set(MX_PACKAGE_HAS_CUDA OFF)
endif()

install(TARGETS ${MX_PACKAGE_TARGETS} EXPORT mxkitTargets ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
foreach(dir ${MX_PACKAGE_HEADER_DIRS})
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/mx/${dir}/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/mx/${dir}
          FILES_MATCHING PATTERN "*.h")
endforeach()
if(TARGET mx)
  install(TARGETS mx RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()

set(MX_PACKAGE_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/mxkit)
install(EXPORT mxkitTargets NAMESPACE mxkit:: DESTINATION ${MX_PACKAGE_CMAKE_DIR})
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/mxkitConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/mxkitConfig.cmake
                              INSTALL_DESTINATION ${MX_PACKAGE_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/mxkitConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/mxkitConfig.cmake ${PROJECT_BINARY_DIR}/mxkitConfigVersion.cmake
        DESTINATION ${MX_PACKAGE_CMAKE_DIR})

# The prefix is found from the .pc file's own place, so that `--prefix P` at install time holds.
file(RELATIVE_PATH MX_PC_PREFIX_FROM_PCDIR /${CMAKE_INSTALL_LIBDIR}/pkgconfig /)
string(REGEX REPLACE "/$" "" MX_PC_PREFIX_FROM_PCDIR "${MX_PC_PREFIX_FROM_PCDIR}")
configure_file(${CMAKE_CURRENT_LIST_DIR}/mxkit.pc.in ${PROJECT_BINARY_DIR}/mxkit.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/mxkit.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
