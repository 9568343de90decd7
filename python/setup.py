"""Builds libtokemb with CMake and bundles it in the package, so `pip install ./python` gives a working
`import tokemb` from any directory (the package folder is the first place tokemb/_lib.py looks after
TOKEMB_LIBRARY). Offline on Debian 12: `pip install ./python --no-build-isolation` uses Debian's
python3-setuptools and python3-wheel, cmake and gcc. TOKEMB_CMAKE_ARGS adds CMake options."""
import glob
import os
import shlex
import shutil
import subprocess
import tempfile

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.environ.get("TOKEMB_SOURCE_DIR", os.path.dirname(HERE))  # python/ sits in the repository


class BuildWithLibrary(build_py):
    """build_py, then a Release build of the shared library copied into build_lib/tokemb/ under its
    SONAME (libtokemb.so.<major>, found by glob: the real file the SONAME link points to)."""

    def run(self):
        super().run()
        if not os.path.exists(os.path.join(SOURCE, "CMakeLists.txt")):
            raise RuntimeError("tokemb: no CMakeLists.txt in %s; build from the repository (pip install ./python) "
                               "or set TOKEMB_SOURCE_DIR" % SOURCE)
        build = tempfile.mkdtemp(prefix="tokemb-build-")
        try:
            subprocess.check_call(["cmake", "-S", SOURCE, "-B", build, "-DCMAKE_BUILD_TYPE=Release",
                                   "-DBUILD_TESTING=OFF", "-DTOKEMB_BUILD_BENCH=OFF"]
                                  + shlex.split(os.environ.get("TOKEMB_CMAKE_ARGS", "")))
            subprocess.check_call(["cmake", "--build", build, "--target", "tokemb", "-j",
                                   str(min(4, os.cpu_count() or 1))])
            sonames = [p for p in glob.glob(os.path.join(build, "libtokemb.so.*"))
                       if os.path.islink(p) and os.path.basename(p).count(".") == 2]
            if len(sonames) != 1:
                raise RuntimeError("tokemb: expected one libtokemb.so.<major> in %s, found %s" % (build, sonames))
            dest = os.path.join(self.build_lib, "tokemb", os.path.basename(sonames[0]))
            shutil.copyfile(os.path.realpath(sonames[0]), dest)  # a regular file named by the SONAME
            os.chmod(dest, 0o755)
        finally:
            shutil.rmtree(build, ignore_errors=True)


class BinaryDistribution(Distribution):
    def has_ext_modules(self):  # the wheel carries a native library: platform-tagged, not py3-none-any
        return True


setup(cmdclass={"build_py": BuildWithLibrary}, distclass=BinaryDistribution)
