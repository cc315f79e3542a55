import Foundation

/// The images a run trains and validates on, built from its configuration.
public struct RunData: Sendable {
    public var train: ImageDataset
    public var val: ImageDataset?
    public var classNames: [String]

    /// Reads `--data` (and `--val`), splits per class when asked, and takes the long-tailed
    /// subset of the training images (n_max = their largest class) when a profile is given.
    public static func load(_ c: TrainConfig) throws -> RunData {
        var (train, names) = try DatasetFile.load(path: c.data, train: true)
        var val: ImageDataset? = nil
        if let v = c.val {
            let (d, _) = try DatasetFile.load(path: v, train: false)
            guard d.imageShape == train.imageShape else {
                throw DatasetError(path: v, message: "images are \(d.imageShape), the training images \(train.imageShape)")
            }
            guard d.labels.allSatisfy({ $0 < train.classes }) else {
                throw DatasetError(path: v, message: "has labels outside the training set's \(train.classes) classes")
            }
            val = ImageDataset(imageShape: d.imageShape, pixels: d.pixels, labels: d.labels, classes: train.classes)
        } else if let first = c.splitFirst {
            let (head, rest) = train.splitPerClass(first: first)
            train = head
            val = rest.count > 0 ? rest : nil
        }
        if let profile = c.ltProfile, let ratio = c.ltRatio {
            let nMax = train.classCounts.max() ?? 0
            let counts = LongTail.counts(classes: train.classes, nMax: nMax, profile: profile, ratio: ratio)
            do {
                train = train.subset(try LongTail.subsetIndices(labels: train.labels, counts: counts, seed: c.ltSeed))
            } catch let e as DatasetError {
                throw DatasetError(path: c.data, message: e.message)
            }
        }
        guard train.count > 0 else { throw DatasetError(path: c.data, message: "no training images") }
        if names.count != train.classes { names = (0..<train.classes).map(String.init) }
        return RunData(train: train, val: val, classNames: names)
    }
}

/// Dataset files by kind: an MNIST IDX images file (its labels found by name), or a CIFAR
/// binary file or folder.
public enum DatasetFile {
    public static func load(path: String, train: Bool) throws -> (ImageDataset, [String]) {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw DatasetError(path: path, message: "no such file or folder")
        }
        if !isDirectory.boolValue && MNIST.labelsPath(forImages: path) != nil {
            let d = try MNIST.load(images: path)
            return (d, (0..<d.classes).map(String.init))
        }
        if isDirectory.boolValue || path.hasSuffix(".bin") {
            let d = try CIFAR.load(path: path, train: train)
            return (d, CIFAR.classNames(near: path, classes: d.classes))
        }
        throw DatasetError(path: path, message: "not a dataset Kiln reads: expected an MNIST images file (…-images-idx3-ubyte[.gz], labels beside it as …-labels-idx1-ubyte[.gz]) or CIFAR-10/100 binary files (a .bin file or their folder)")
    }
}

extension CIFAR {
    static let cifar10Names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

    /// Class names: the distribution's `batches.meta.txt` (CIFAR-10) or `fine_label_names.txt`
    /// (CIFAR-100) beside the data when present; CIFAR-10's published names otherwise; indices
    /// for CIFAR-100 without its names file.
    static func classNames(near path: String, classes: Int) -> [String] {
        var isDirectory: ObjCBool = false
        FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
        let folder = isDirectory.boolValue ? path : (path as NSString).deletingLastPathComponent
        let file = classes == 10 ? "batches.meta.txt" : "fine_label_names.txt"
        if let text = try? String(contentsOfFile: (folder as NSString).appendingPathComponent(file), encoding: .utf8) {
            let names = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            if names.count == classes { return names }
        }
        return classes == 10 ? cifar10Names : (0..<classes).map(String.init)
    }
}
