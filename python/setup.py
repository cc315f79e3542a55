"""The native half of `pip install ./python`: libKilnC.so (the C ABI the sessions call) and
the `kiln` program (which infer_folder and train run) are put in the package as kiln/_bin/.

Each comes from the environment variable naming an already built one (KILN_LIBRARY,
KILN_BIN), else from `swift build -c release` in the repository this folder belongs to.
"""
import os
import shutil
import subprocess

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

HERE = os.path.dirname(os.path.abspath(__file__))
REPOSITORY = os.path.dirname(HERE)


def built(product, filename):
    """The release build's `filename`, after `swift build -c release --product product`."""
    if not os.path.exists(os.path.join(REPOSITORY, "Package.swift")):
        raise SystemExit(f"kiln: {REPOSITORY} is not the Kiln repository, so there is nothing to build; set KILN_LIBRARY "
                         "and KILN_BIN to a built libKilnC.so and kiln (or run pip from the repository: pip install ./python)")
    swift = shutil.which("swift")
    if swift is None:
        raise SystemExit("kiln: no `swift` on PATH to build the native library; run the README's setup (make build) first, "
                         "or set KILN_LIBRARY and KILN_BIN to built ones")
    print(f"kiln: swift build -c release --product {product}", flush=True)
    subprocess.run([swift, "build", "-c", "release", "--product", product], cwd=REPOSITORY, check=True)
    bin_path = subprocess.run([swift, "build", "-c", "release", "--show-bin-path"], cwd=REPOSITORY, check=True,
                              capture_output=True, text=True).stdout.strip()
    return os.path.join(bin_path, filename)


class BuildWithNative(build_py):
    def run(self):
        super().run()
        target = os.path.join(self.build_lib, "kiln", "_bin")
        os.makedirs(target, exist_ok=True)
        for variable, product, filename in (("KILN_LIBRARY", "KilnC", "libKilnC.so"), ("KILN_BIN", "kiln", "kiln")):
            source = os.environ.get(variable) or built(product, filename)
            if not os.path.isfile(source):
                raise SystemExit(f"kiln: {source}: no such file ({variable if os.environ.get(variable) else 'the build'} names it)")
            print(f"kiln: {source} → kiln/_bin/{filename}", flush=True)
            shutil.copy2(source, os.path.join(target, filename))


class NativeDistribution(Distribution):
    # The package holds a native library: a platform wheel, not a pure-Python one.
    def has_ext_modules(self):
        return True


setup(cmdclass={"build_py": BuildWithNative}, distclass=NativeDistribution)
