// The translation unit that builds the test programs' shared precompiled header (GoogleTest and
// the standard headers the tests use most; see tests/CMakeLists.txt). It holds nothing itself.
