/// The networks Kiln ships in `models/`, written with the builder.
public enum ModelZoo {
    public static let names = ["resnet32-cifar", "resnet8-mnist", "resnet18", "resnet50"]

    public static func model(named name: String) throws(GraphError) -> Graph? {
        switch name {
        case "resnet32-cifar": return try cifarResNet(blocksPerStage: 5, inputChannels: 3, size: 32, classes: 10, name: "resnet32_cifar")
        case "resnet8-mnist": return try cifarResNet(blocksPerStage: 1, inputChannels: 1, size: 28, classes: 10, name: "resnet8_mnist")
        case "resnet18": return try imageNetResNet(layers: [2, 2, 2, 2], bottleneck: false, name: "resnet18")
        case "resnet50": return try imageNetResNet(layers: [3, 4, 6, 3], bottleneck: true, name: "resnet50")
        default: return nil
        }
    }

    /// The CIFAR ResNet of He et al. 2016 (§4.2) as used by LDAM-DRW: a 3×3 stem of 16
    /// channels, three stages of BasicBlocks (16/32/64 channels, strides 1/2/2), option-A
    /// shortcuts (subsample by 2, zero-pad channels), global average pooling, Linear head.
    /// Depth = 6·blocksPerStage + 2 (5 → ResNet-32, 1 → ResNet-8).
    ///
    /// References: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016;
    /// Cao et al., "Learning Imbalanced Datasets with Label-Distribution-Aware Margin Loss", NeurIPS 2019.
    public static func cifarResNet(blocksPerStage: Int, inputChannels: Int, size: Int, classes: Int, name: String) throws(GraphError) -> Graph {
        let b = GraphBuilder(name: name, metadata: [
            "kiln.description": "CIFAR-style ResNet-\(6 * blocksPerStage + 2) (option-A shortcuts, Linear head), \(inputChannels)×\(size)×\(size) input, \(classes) classes",
        ])
        var x = b.input("image", TensorType(.f32, [Dim(symbol: "N"), Dim(inputChannels), Dim(size), Dim(size)]))
        x = try b.conv2d(x, name: "conv1", out: 16, kernel: 3, pad: 1)
        x = try b.batchNorm(x, name: "bn1")
        x = try b.relu(x, name: "relu")
        var inPlanes = 16
        for (stage, planes) in [16, 32, 64].enumerated() {
            for block in 0..<blocksPerStage {
                let stride = stage > 0 && block == 0 ? 2 : 1
                let p = "layer\(stage + 1).\(block)"
                var y = try b.conv2d(x, name: "\(p).conv1", out: planes, kernel: 3, stride: stride, pad: 1)
                y = try b.batchNorm(y, name: "\(p).bn1")
                y = try b.relu(y, name: "\(p).relu1")
                y = try b.conv2d(y, name: "\(p).conv2", out: planes, kernel: 3, pad: 1)
                y = try b.batchNorm(y, name: "\(p).bn2")
                var shortcut = x
                if stride != 1 || inPlanes != planes {
                    // Option A: x[:, :, ::2, ::2], then planes/4 zero channels on each side.
                    let sliced = try b.op("Slice", name: "\(p).shortcut.subsample", [
                        x, b.constant("shortcut.starts", ints: [0, 0]), b.constant("shortcut.ends", ints: [Int(Int64.max), Int(Int64.max)]),
                        b.constant("shortcut.axes", ints: [2, 3]), b.constant("shortcut.steps", ints: [2, 2]),
                    ])
                    let q = planes / 4
                    shortcut = try b.op("Pad", name: "\(p).shortcut", [sliced, b.constant("shortcut.pads.\(q)", ints: [0, q, 0, 0, 0, q, 0, 0])])
                }
                y = try b.add(y, shortcut, name: "\(p).add")
                x = try b.relu(y, name: "\(p).relu2")
                inPlanes = planes
            }
        }
        x = try b.op("GlobalAveragePool", name: "avgpool", [x])
        x = try b.op("Flatten", name: "flatten", [x])
        x = try b.linear(x, name: "linear", out: classes, weightInit: .kaimingNormal(.fanIn))
        b.output(x)
        return try b.build()
    }

    /// torchvision's ResNet-18/50 for 3×224×224 input and 1000 classes: 7×7/2 stem, 3×3/2
    /// max pool, four stages (64/128/256/512 base widths, Bottleneck ×4 expansion for 50)
    /// with 1×1 convolution + BN downsampling shortcuts, stride on the 3×3 convolution.
    public static func imageNetResNet(layers: [Int], bottleneck: Bool, name: String, classes: Int = 1000) throws(GraphError) -> Graph {
        let depth = bottleneck ? 3 * layers.reduce(0, +) + 2 : 2 * layers.reduce(0, +) + 2
        let b = GraphBuilder(name: name, metadata: [
            "kiln.description": "ResNet-\(depth) (torchvision layout), 3×224×224 input, \(classes) classes",
        ])
        let convInit = Initializer.kaimingNormal(.fanOut)
        var x = b.input("image", TensorType(.f32, [Dim(symbol: "N"), 3, 224, 224]))
        x = try b.conv2d(x, name: "conv1", out: 64, kernel: 7, stride: 2, pad: 3, weightInit: convInit)
        x = try b.batchNorm(x, name: "bn1")
        x = try b.relu(x, name: "relu")
        x = try b.op("MaxPool", name: "maxpool", [x], ["kernel_shape": .ints([3, 3]), "strides": .ints([2, 2]), "pads": .ints([1, 1, 1, 1])])
        let expansion = bottleneck ? 4 : 1
        var inPlanes = 64
        for (stage, count) in layers.enumerated() {
            let planes = 64 << stage
            for block in 0..<count {
                let stride = stage > 0 && block == 0 ? 2 : 1
                let p = "layer\(stage + 1).\(block)"
                var y: String
                if bottleneck {
                    y = try b.conv2d(x, name: "\(p).conv1", out: planes, kernel: 1, weightInit: convInit)
                    y = try b.relu(b.batchNorm(y, name: "\(p).bn1"), name: "\(p).relu1")
                    y = try b.conv2d(y, name: "\(p).conv2", out: planes, kernel: 3, stride: stride, pad: 1, weightInit: convInit)
                    y = try b.relu(b.batchNorm(y, name: "\(p).bn2"), name: "\(p).relu2")
                    y = try b.conv2d(y, name: "\(p).conv3", out: planes * 4, kernel: 1, weightInit: convInit)
                    y = try b.batchNorm(y, name: "\(p).bn3")
                } else {
                    y = try b.conv2d(x, name: "\(p).conv1", out: planes, kernel: 3, stride: stride, pad: 1, weightInit: convInit)
                    y = try b.relu(b.batchNorm(y, name: "\(p).bn1"), name: "\(p).relu1")
                    y = try b.conv2d(y, name: "\(p).conv2", out: planes, kernel: 3, pad: 1, weightInit: convInit)
                    y = try b.batchNorm(y, name: "\(p).bn2")
                }
                var shortcut = x
                if stride != 1 || inPlanes != planes * expansion {
                    shortcut = try b.conv2d(x, name: "\(p).downsample.0", out: planes * expansion, kernel: 1, stride: stride, weightInit: convInit)
                    shortcut = try b.batchNorm(shortcut, name: "\(p).downsample.1")
                }
                x = try b.relu(b.add(y, shortcut, name: "\(p).add"), name: "\(p).relu")
                inPlanes = planes * expansion
            }
        }
        x = try b.op("GlobalAveragePool", name: "avgpool", [x])
        x = try b.op("Flatten", name: "flatten", [x])
        x = try b.linear(x, name: "fc", out: classes)
        b.output(x)
        return try b.build()
    }
}
