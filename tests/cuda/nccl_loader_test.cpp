// NCCL opened at run time (nccl_loader.h): found with every function where it is installed, and
// a one-line reason naming each place tried where it cannot be opened. No GPU is needed:
// nothing here creates a communicator.
#include "mx/kernels/cuda/nccl_loader.h"

#include <gtest/gtest.h>

#include <string>

namespace mx::cuda {
namespace {

TEST(NcclLoader, OpensTheInstalledLibraryWithEveryFunction) {
  std::string error;
  const Nccl* api = nccl(&error);
  if (api == nullptr) GTEST_SKIP() << "NCCL is not installed here: " << error;
  for (const void* f : {reinterpret_cast<const void*>(api->get_version),
                        reinterpret_cast<const void*>(api->get_unique_id),
                        reinterpret_cast<const void*>(api->comm_init_rank),
                        reinterpret_cast<const void*>(api->comm_destroy),
                        reinterpret_cast<const void*>(api->comm_abort),
                        reinterpret_cast<const void*>(api->comm_get_async_error),
                        reinterpret_cast<const void*>(api->error_string),
                        reinterpret_cast<const void*>(api->reduce_scatter),
                        reinterpret_cast<const void*>(api->all_gather),
                        reinterpret_cast<const void*>(api->all_reduce)}) {
    EXPECT_NE(f, nullptr);
  }
  int version = 0;
  ASSERT_EQ(api->get_version(&version), ncclSuccess);
  EXPECT_GE(version / 10000, NCCL_MAJOR);  // NCCL_VERSION_CODE: major * 10000 + ...
  EXPECT_EQ(nccl(nullptr), api);           // opened once per process
}

TEST(NcclLoader, NamesEveryPlaceTriedInOneLineWhenNoneOpens) {
  std::string error;
  EXPECT_FALSE(open_nccl({"/nowhere/libnccl.so.2", "libnccl-missing.so"}, &error));
  EXPECT_NE(error.find("cannot load NCCL"), std::string::npos) << error;
  EXPECT_NE(error.find("/nowhere/libnccl.so.2"), std::string::npos) << error;
  EXPECT_NE(error.find("libnccl-missing.so"), std::string::npos) << error;
  EXPECT_EQ(error.find('\n'), std::string::npos);
}

TEST(NcclLoader, NamesTheMissingFunctionOfALibraryThatIsNotNccl) {
  std::string error;
  EXPECT_FALSE(open_nccl({"libc.so.6"}, &error));
  EXPECT_NE(error.find("libc.so.6 has no function ncclGetVersion"), std::string::npos) << error;
}

}  // namespace
}  // namespace mx::cuda
