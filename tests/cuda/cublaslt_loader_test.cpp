// cuBLASLt opened at run time (cublaslt_loader.h): found in this toolkit with every function,
// found through the toolkit's folder when the search path lacks it, and a one-line reason where
// it cannot be opened. No GPU is needed: nothing here creates a handle.
#include "mx/kernels/cuda/cublaslt_loader.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

namespace mx::cuda {
namespace {

// The library as the toolkit found at configure time holds it; independent of the loader's own
// list of places.
std::string toolkit_library() {
  return std::string(MX_TEST_CUDA_LIBRARY_DIR) + "/libcublasLt.so." +
         std::to_string(CUBLAS_VER_MAJOR);
}

#define SKIP_WITHOUT_TOOLKIT_LIBRARY()                                        \
  if (!std::filesystem::exists(toolkit_library()))                            \
  GTEST_SKIP() << "no " << toolkit_library() << " in this CUDA toolkit (the " \
               << "runtime-only install has no cuBLASLt to open)"

void expect_every_function(const CublasLt& api) {
  EXPECT_NE(api.create, nullptr);
  EXPECT_NE(api.destroy, nullptr);
  EXPECT_NE(api.status_string, nullptr);
  EXPECT_NE(api.version, nullptr);
  EXPECT_NE(api.matmul, nullptr);
  EXPECT_NE(api.algo_config_get_attribute, nullptr);
  EXPECT_NE(api.algo_get_heuristic, nullptr);
  EXPECT_NE(api.desc_create, nullptr);
  EXPECT_NE(api.desc_destroy, nullptr);
  EXPECT_NE(api.desc_set_attribute, nullptr);
  EXPECT_NE(api.preference_create, nullptr);
  EXPECT_NE(api.preference_destroy, nullptr);
  EXPECT_NE(api.preference_set_attribute, nullptr);
  EXPECT_NE(api.layout_create, nullptr);
  EXPECT_NE(api.layout_destroy, nullptr);
}

TEST(CublasLtLoader, OpensThisToolkitsLibraryWithEveryFunction) {
  SKIP_WITHOUT_TOOLKIT_LIBRARY();
  std::string error;
  const CublasLt* api = cublaslt(&error);
  ASSERT_NE(api, nullptr) << error;
  expect_every_function(*api);
  // A call through a pointer reaches cuBLASLt: it describes each status in words of its own.
  const std::string success = api->status_string(CUBLAS_STATUS_SUCCESS);
  const std::string not_supported = api->status_string(CUBLAS_STATUS_NOT_SUPPORTED);
  EXPECT_FALSE(success.empty());
  EXPECT_FALSE(not_supported.empty());
  EXPECT_NE(success, not_supported);
}

TEST(CublasLtLoader, OpensOnceForTheWholeProcess) {
  SKIP_WITHOUT_TOOLKIT_LIBRARY();
  std::string error;
  const CublasLt* first = cublaslt(&error);
  ASSERT_NE(first, nullptr) << error;
  EXPECT_EQ(cublaslt(nullptr), first);
}

TEST(CublasLtLoader, LooksInTheToolkitFolderAfterTheSearchPath) {
  const std::vector<std::string> candidates = cublaslt_candidates();
  ASSERT_EQ(candidates.size(), 2u);
  EXPECT_EQ(candidates[0], "libcublasLt.so." + std::to_string(CUBLAS_VER_MAJOR));
  EXPECT_EQ(std::filesystem::path(candidates[1]), std::filesystem::path(toolkit_library()));
}

TEST(CublasLtLoader, TriesTheNextPlaceWhenOneDoesNotOpen) {
  SKIP_WITHOUT_TOOLKIT_LIBRARY();
  std::string error;
  const std::optional<CublasLt> api =
      open_cublaslt({"/nonexistent/libcublasLt.so", toolkit_library()}, &error);
  ASSERT_TRUE(api.has_value()) << error;
  expect_every_function(*api);
}

TEST(CublasLtLoader, NamesEveryPlaceTriedInOneLineWhenNoneOpens) {
  std::string error;
  const std::optional<CublasLt> api =
      open_cublaslt({"/nonexistent/a/libcublasLt.so", "/nonexistent/b/libcublasLt.so"}, &error);
  EXPECT_FALSE(api.has_value());
  EXPECT_NE(error.find("cannot load cuBLASLt"), std::string::npos) << error;
  EXPECT_NE(error.find("/nonexistent/a/libcublasLt.so"), std::string::npos) << error;
  EXPECT_NE(error.find("/nonexistent/b/libcublasLt.so"), std::string::npos) << error;
  EXPECT_EQ(error.find('\n'), std::string::npos) << error;
}

TEST(CublasLtLoader, NamesTheMissingFunctionOfALibraryThatIsNotCublasLt) {
  // The C math library opens everywhere and has none of cuBLASLt's functions.
  std::string error;
  const std::optional<CublasLt> api = open_cublaslt({"libm.so.6"}, &error);
  EXPECT_FALSE(api.has_value());
  EXPECT_NE(error.find("libm.so.6 has no function cublasLtCreate"), std::string::npos) << error;
}

TEST(CublasLtLoader, SaysSoWhenGivenNoPlaceToLook) {
  std::string error;
  EXPECT_FALSE(open_cublaslt({}, &error).has_value());
  EXPECT_NE(error.find("no place to look"), std::string::npos) << error;
}

}  // namespace
}  // namespace mx::cuda
