# The fuzz targets, fuzz/fuzz_<name>.cpp: built for libFuzzer by fuzz/CMakeLists.txt (MX_FUZZ) and
# for the test suite's replay by tests/CMakeLists.txt.
set(MX_FUZZ_TARGETS safetensors gguf llama2c npy model_file model_gguf checkpoint recipe)
