// Where data lives. The library reads no environment variable except through
// data_paths_from_environment, so tests and tools can point it anywhere.
#pragma once

#include <filesystem>

namespace mx::data {

struct DataPaths {
  // The shared data folder (tinyshakespeare/, wikitext-2/, gpt2/, ...). Empty: unknown.
  std::filesystem::path data_dir;
  // Downloaded corpora (sotu/). Empty: unknown.
  std::filesystem::path cache_dir;
};

// data_dir = $MX_DATA_DIR; cache_dir = $MX_CACHE_DIR, else $XDG_CACHE_HOME/mxkit, else
// $HOME/.cache/mxkit (the folder scripts/fetch-corpora.sh fills).
DataPaths data_paths_from_environment();

}  // namespace mx::data
