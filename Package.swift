// swift-tools-version: 6.0
import PackageDescription

// Numeric targets are built with -Ounchecked in release builds.
let numeric: [SwiftSetting] = [.unsafeFlags(["-Ounchecked", "-wmo"], .when(configuration: .release))]

let package = Package(
    name: "sdflow",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "sdflow", targets: ["sdflow"]),
    ],
    dependencies: [
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS"),
        .target(name: "CPNG", path: "Sources/CPNG", linkerSettings: [.linkedLibrary("png16")]),
        .target(name: "CKernels", path: "Sources/CKernels", cSettings: [.unsafeFlags(["-O3", "-fno-math-errno"])]),
        .target(name: "CAMX", dependencies: ["CKernels"], path: "Sources/CAMX", cSettings: [.unsafeFlags(["-O3", "-fno-math-errno"])]),
        .target(name: "Tensor", dependencies: ["CBLAS", "CKernels", "CAMX"], path: "Sources/Tensor", swiftSettings: numeric),
        .target(name: "Diffusion", dependencies: ["Tensor"], path: "Sources/Diffusion",
                resources: [.copy("Resources/bpe_simple_vocab_16e6.txt"),
                            .copy("Resources/LICENSE-open_clip.txt"),
                            .copy("Resources/NOTICE")],
                swiftSettings: numeric),
        .target(name: "Imaging", dependencies: ["Tensor", "CPNG"], path: "Sources/Imaging", swiftSettings: numeric),
        .target(name: "Workflow", dependencies: ["Yams"], path: "Sources/Workflow"),
        .target(name: "Nodes", dependencies: ["Workflow", "Diffusion", "Imaging", "Tensor"], path: "Nodes"),
        .executableTarget(
            name: "sdflow",
            dependencies: ["Nodes", "Workflow", "Tensor",
                           .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Sources/sdflow"),
        .testTarget(name: "WorkflowTests", dependencies: ["Workflow"], path: "Tests/WorkflowTests"),
        .testTarget(name: "TensorTests", dependencies: ["Tensor"], path: "Tests/TensorTests"),
        .testTarget(name: "ImagingTests", dependencies: ["Imaging"], path: "Tests/ImagingTests"),
        .testTarget(name: "DiffusionTests", dependencies: ["Diffusion", "Tensor"], path: "Tests/DiffusionTests"),
        .testTarget(name: "NodesTests", dependencies: ["Nodes", "Workflow", "Imaging"], path: "Tests/NodesTests"),
    ],
    swiftLanguageModes: [.v5]
)
