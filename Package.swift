// swift-tools-version:6.1
import Foundation
import PackageDescription

/// One binary for every x86-64 CPU: the Swift code and the kernels' dispatcher target baseline
/// x86-64, and the kernels are compiled three times — portable, AVX2 + FMA (x86-64-v3) and
/// AVX-512 (x86-64-v4) — with the level chosen at start-up by CPUID (Sources/CKernels/dispatch.c).
/// No -mtune: with clang 21, `-mtune=generic` on top of -march=x86-64-v3 made the packed
/// GEMM's inner loop 2.2× slower on an AMD EPYC (Zen 2) than -march alone (which measured
/// within 5 % of -mtune=znver2, znver4, skylake, haswell and icelake-server).
func kernelLevel(_ name: String, march: String) -> Target {
    .target(name: name, cSettings: [.unsafeFlags(["-O3", "-march=\(march)", "-Wno-psabi"])])
}

let package = Package(
    name: "Kiln",
    products: [
        .executable(name: "kiln", targets: ["kiln"]),
        .library(name: "Graph", targets: ["Graph"]),
        .library(name: "ONNX", targets: ["ONNX"]),
        .library(name: "Compiler", targets: ["Compiler"]),
        .library(name: "Runtime", targets: ["Runtime"]),
        .library(name: "Train", targets: ["Train"]),
        .library(name: "Imaging", targets: ["Imaging"]),
        // The C ABI (Sources/KilnC) as a shared library, for Python (python/) and C callers.
        .library(name: "KilnC", type: .dynamic, targets: ["KilnC"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // MARK: - Public modules
        .target(name: "Graph"),
        // ONNX import and export (protobuf-c), so the IR core links no protobuf code.
        .target(name: "ONNX", dependencies: ["Graph", "COnnxProto"]),
        .target(name: "Compiler", dependencies: ["Graph", "CKernels"]),
        .target(name: "Runtime", dependencies: ["Graph", "ONNX", "Compiler", "CBLAS", "CKernels", "CMPI"]),
        // Open MPI loaded with dlopen under mpirun (no MPI library linked).
        .target(name: "CMPI", cSettings: [.unsafeFlags(["-O2"])], linkerSettings: [.linkedLibrary("dl")]),
        .target(name: "Train", dependencies: ["Graph", "ONNX", "Compiler", "Runtime", "Imaging", "CZlib"]),
        .target(name: "Imaging", dependencies: ["CImageCodecs"]),
        .target(name: "KilnC", dependencies: ["Graph", "ONNX", "Compiler", "Runtime"]),
        // Fuzz targets (scripts/fuzz.sh builds them with libFuzzer; this build replays corpora).
        .executableTarget(name: "kiln-fuzz", dependencies: ["Graph", "ONNX", "Imaging", "Train", "CFuzzDriver"], path: "Sources/KilnFuzz"),
        .executableTarget(
            name: "kiln",
            dependencies: [
                "Graph", "ONNX", "Compiler", "Runtime", "Train", "Imaging",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        // MARK: - C shims
        // protobuf-c code generated from proto/onnx-kiln.proto by scripts/gen-proto.sh.
        .target(name: "COnnxProto", dependencies: ["CProtobufC"]),
        .target(name: "CKernels", dependencies: ["CKernelsPortable", "CKernelsAVX2", "CKernelsAVX512"],
                exclude: ["kernels"], cSettings: [.unsafeFlags(["-O3"])]),
        kernelLevel("CKernelsPortable", march: "x86-64"),
        kernelLevel("CKernelsAVX2", march: "x86-64-v3"),
        kernelLevel("CKernelsAVX512", march: "x86-64-v4"),
        .target(name: "CFuzzDriver"),
        // PNG and JPEG decoding through Debian's libpng16 and libjpeg-turbo (libpng-dev, libjpeg-dev).
        .target(name: "CImageCodecs", cSettings: [.unsafeFlags(["-O2"])],
                linkerSettings: [.linkedLibrary("png16"), .linkedLibrary("jpeg")]),
        .systemLibrary(
            name: "CBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]
        ),
        .systemLibrary(
            name: "CZlib",
            pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        .systemLibrary(
            name: "CProtobufC",
            pkgConfig: "libprotobuf-c",
            providers: [.apt(["libprotobuf-c-dev"])]
        ),

        // MARK: - Tests
        .testTarget(name: "GraphTests", dependencies: ["Graph", "ONNX"]),
        // The C kernels against plain loops, at the level KILN_ISA names (make test runs every level).
        .testTarget(name: "KernelTests", dependencies: ["CKernels"]),
        .testTarget(name: "CompilerTests", dependencies: ["Compiler", "Graph"]),
        .testTarget(name: "RuntimeTests", dependencies: ["Runtime", "Compiler", "Graph"]),
        .testTarget(name: "TrainTests", dependencies: ["Train", "Runtime", "Compiler", "Graph"]),
        .testTarget(name: "ImagingTests", dependencies: ["Imaging", "Graph"]),
        .testTarget(
            name: "KilnCLITests",
            dependencies: ["kiln", "Graph", "ONNX", "Runtime", "Train"],
            resources: []
        ),
    ],
    swiftLanguageModes: [.v6]
)
