"""Builds the `mxkit` package for pip: CMake configures the library-only build, builds the
pybind11 module and copies the package folder it assembles (python/mxkit plus _mxkit*.so) into
the wheel. Needs CMake, a C++20 compiler, pybind11 and nlohmann-json's headers; CUDA kernels are
built when nvcc is found, as in the CMake build. CMAKE_ARGS passes more options, e.g.
CMAKE_ARGS="-DMX_CUDA=OFF" pip install . ; MXKIT_BUILD_DIR chooses the build folder.
"""
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
# setuptools' own folders and the CMake build: MXKIT_BUILD_DIR, else build-pip/ (kept out of
# build/, the CMake build of `make`, and of the source root).
PIP_BUILD = Path(os.environ.get("MXKIT_BUILD_DIR") or ROOT / "build-pip").resolve()


def project_version():
    text = (ROOT / "CMakeLists.txt").read_text()
    return re.search(r"project\(mxkit VERSION ([0-9.]+)", text).group(1)


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        if shutil.which("cmake") is None:
            sys.exit("mxkit: building the package needs CMake 3.25 or newer on the PATH")
        build = Path(self.build_temp).resolve() / "cmake"
        args = ["-S", str(ROOT), "-B", str(build), "-DMX_LIBRARY_ONLY=ON",
                "-DCMAKE_BUILD_TYPE=Release", f"-DPython3_EXECUTABLE={sys.executable}"]
        try:  # pip's pybind11, where there is no system one
            import pybind11
            args.append(f"-Dpybind11_DIR={pybind11.get_cmake_dir()}")
        except ImportError:
            pass
        args += shlex.split(os.environ.get("CMAKE_ARGS", ""))
        for step in (["cmake", *args], ["cmake", "--build", str(build), "--target", "mxkit_python",
                                        "-j", str(os.cpu_count() or 1)]):
            if subprocess.run(step).returncode != 0:
                sys.exit(f"mxkit: '{' '.join(step[:2])}' failed (its messages are above)")
        built = build / "python" / "mxkit"
        if not any(built.glob("_mxkit*")):
            sys.exit("mxkit: CMake did not build the Python module (see its messages above)")
        package = Path(self.get_ext_fullpath(ext.name)).parent
        shutil.copytree(built, package, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__", "CMakeFiles", "*.cmake"))


os.makedirs(PIP_BUILD, exist_ok=True)
setup(
    version=project_version(),
    options={"build": {"build_base": str(PIP_BUILD)}, "egg_info": {"egg_base": str(PIP_BUILD)}},
    packages=[],
    ext_modules=[Extension("mxkit._mxkit", sources=[])],
    cmdclass={"build_ext": CMakeBuild},
)
