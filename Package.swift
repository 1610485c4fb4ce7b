// swift-tools-version:6.0
import PackageDescription

// Release builds must target AVX2+FMA: SwiftPM's default x86-64 baseline turns every fused
// multiply-add into a libm call and keeps the elementwise kernels scalar (see docs/ARCHITECTURE.md).
let optimized: [SwiftSetting] = [
    .unsafeFlags(["-Xcc", "-march=x86-64-v3", "-Xcc", "-fno-math-errno"], .when(configuration: .release))
]
let optimizedC: [CSetting] = [
    .unsafeFlags(["-march=x86-64-v3", "-O2"], .when(configuration: .release))
]

let package = Package(
    name: "bootmae-swift",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "bootmae-train", targets: ["bootmae-train"]),
        .executable(name: "bootmae-serve", targets: ["bootmae-serve"]),
        .executable(name: "bootmae-bench", targets: ["bootmae-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.5.0"),
    ],
    targets: [
        // System C libraries.
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CLibPNG", pkgConfig: "libpng16", providers: [.apt(["libpng-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CLibJPEG", pkgConfig: "libjpeg", providers: [.apt(["libjpeg62-turbo-dev"])]),
        // Open MPI for training over several processes (`mpirun`). Optional: the module map links
        // nothing itself, so without libopenmpi-dev (pkg-config ompi-c not found: a warning) the
        // shim compiles stubs that report "built without Open MPI" and training runs in one process.
        .systemLibrary(name: "CMPI", pkgConfig: "ompi-c", providers: [.apt(["libopenmpi-dev"])]),
        // The MPI calls bootmae-train makes, as C functions (MPI's handles are macros Swift cannot import).
        .target(name: "CMPIShim", dependencies: ["CMPI"], cSettings: optimizedC),
        // setjmp-safe wrappers around libpng / libjpeg: errors come back as codes, never abort().
        .target(name: "CImageCodecs", dependencies: ["CLibPNG", "CLibJPEG"], cSettings: optimizedC),

        // Elementwise kernels built for AVX-512 and the baseline, picked at load time (CKernels.h).
        // No FMA contraction: the C arithmetic must round exactly like the Swift kernels.
        .target(name: "CKernels", cSettings: [.unsafeFlags(["-ffp-contract=off", "-fno-math-errno"])] + optimizedC),
        // Numerics: tensors, BLAS, kernels with forward and backward.
        .target(name: "Tensor", dependencies: ["CBLAS", "CKernels"], swiftSettings: optimized),
        // Vision transformer layers, encoder and (pretraining) decoders.
        .target(name: "ViT", dependencies: ["Tensor"], swiftSettings: optimized),
        // safetensors files, config.json, model directories, official key names.
        .target(name: "Checkpoint", dependencies: ["Tensor", "ViT"], swiftSettings: optimized),
        // Pretraining objectives behind one seam (Seam/), one folder each (MAE/, BootMAE/, ...).
        .target(name: "Objectives", dependencies: ["Tensor", "ViT", "Checkpoint"], swiftSettings: optimized),
        // Decode / encode / resize / normalize images.
        .target(name: "ImageKit", dependencies: ["CImageCodecs"], swiftSettings: optimized),
        // Line charts (canvas, ticks, bitmap font) for loss curves and `bootmae-train plot`; PNG through ImageKit.
        .target(name: "Plot", dependencies: ["ImageKit"], swiftSettings: optimized),

        // HTTP/1.1 server on POSIX sockets + Dispatch: parser, connections, router, responses (no ML).
        .target(name: "HTTP", dependencies: [.product(name: "Logging", package: "swift-log")], swiftSettings: optimized),
        // What the fuzz harnesses share: libFuzzer's driver in fuzzing builds, the corpus replayer otherwise.
        .target(name: "FuzzSupport"),
        // libFuzzer harness for the request parser (scripts/fuzz-http.sh); a corpus replayer in normal builds.
        .executableTarget(name: "http-parser-fuzz", dependencies: ["HTTP", "FuzzSupport"]),
        // libFuzzer harness for decode → preprocess → PNG (scripts/fuzz-images.sh); a corpus replayer in normal builds.
        .executableTarget(name: "image-decode-fuzz", dependencies: ["ImageKit", "FuzzSupport"]),

        // The ranks of an Open MPI job as a `Collective` (order-preserving sums from MPI collectives).
        .target(name: "Distributed", dependencies: ["Tensor", "CMPIShim"], swiftSettings: optimized),

        // Datasets, augmentation, optimizers, schedules, training loops, evaluation.
        .target(name: "Training", dependencies: ["Tensor", "ViT", "Checkpoint", "Objectives", "ImageKit", "Plot", "CZlib"], swiftSettings: optimized),

        .executableTarget(
            name: "bootmae-train",
            dependencies: ["Tensor", "ViT", "Checkpoint", "Objectives", "ImageKit", "Plot", "Training", "Distributed",
                           .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: optimized),
        // The inference service: model registry, batching, endpoint handlers, metrics (no sockets).
        .target(name: "Service", dependencies: ["Tensor", "ViT", "Checkpoint", "Objectives", "ImageKit"], swiftSettings: optimized),
        // libFuzzer harness for JSON and multipart request decoding (scripts/fuzz-requests.sh); a corpus replayer in normal builds.
        .executableTarget(name: "request-decode-fuzz", dependencies: ["Service", "FuzzSupport"]),

        .executableTarget(
            name: "bootmae-serve",
            dependencies: ["Tensor", "ViT", "Checkpoint", "ImageKit", "Service", "HTTP",
                           .product(name: "Logging", package: "swift-log"),
                           .product(name: "ArgumentParser", package: "swift-argument-parser")],
            // openapi.yaml (a link to the repository's) compiled in: /openapi.yaml answers from any directory.
            resources: [.embedInCode("openapi.yaml")],
            swiftSettings: optimized),

        // Benchmarks (bench/): throughput of our code, run in release builds only.
        .executableTarget(name: "bootmae-bench", dependencies: ["Tensor", "ViT", "ImageKit", "Checkpoint", "Objectives", "Training"], path: "bench/BootMAEBench",
                          swiftSettings: optimized),
        // A trivial HTTP server for load tests with wrk (bench/http-echo/README.md).
        .executableTarget(name: "http-echo", dependencies: ["HTTP"], path: "bench/http-echo", exclude: ["README.md"],
                          swiftSettings: optimized),

        .target(name: "TestSupport", dependencies: ["Tensor", "Checkpoint"], path: "Tests/TestSupport"),
        .testTarget(name: "TensorTests", dependencies: ["Tensor", "TestSupport"]),
        .testTarget(name: "ViTTests", dependencies: ["ViT", "Checkpoint", "TestSupport"]),
        .testTarget(name: "CheckpointTests", dependencies: ["Checkpoint", "TestSupport"]),
        .testTarget(name: "ImageKitTests", dependencies: ["ImageKit", "TestSupport"]),
        .testTarget(name: "PlotTests", dependencies: ["Plot", "ImageKit"]),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "Objectives", "TestSupport"]),
        .testTarget(name: "ServiceTests", dependencies: ["Service", "Objectives", "TestSupport"]),
        .testTarget(name: "HTTPTests", dependencies: ["HTTP"]),
        // An objective defined in a test alone trains, resumes, exports and serves (the seam is open).
        .testTarget(name: "ObjectiveSeamTests", dependencies: ["Objectives", "Training", "Service", "ImageKit", "TestSupport"]),
        .testTarget(name: "PretrainingTests", dependencies: ["ViT", "Checkpoint", "Objectives", "Training", "TestSupport"]),
        // Runs the built executables end to end (they are built by `swift build --build-tests`).
        .testTarget(name: "CLITests", dependencies: ["Tensor", "ViT", "Checkpoint", "Objectives", "ImageKit", "TestSupport"]),
    ]
)
