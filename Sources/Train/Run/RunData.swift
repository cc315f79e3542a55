import Foundation
import Graph
import Imaging
import Runtime

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
        if isDirectory.boolValue && ImageFolder.isClassFolder(path) {
            return try ImageFolder.load(path)
        }
        if isDirectory.boolValue || path.hasSuffix(".bin") {
            let d = try CIFAR.load(path: path, train: train)
            return (d, CIFAR.classNames(near: path, classes: d.classes))
        }
        throw DatasetError(path: path, message: "not a dataset Kiln reads: expected an MNIST images file (…-images-idx3-ubyte[.gz], labels beside it as …-labels-idx1-ubyte[.gz]), CIFAR-10/100 binary files (a .bin file or their folder), or a folder with one subfolder of PNG/JPEG images per class")
    }
}

extension CIFAR {
    static let cifar10Names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

    /// Class names: the distribution's `batches.meta.txt` (CIFAR-10) or `fine_label_names.txt`
    /// (CIFAR-100) beside the data when present; CIFAR-10's published names otherwise; indices
    /// for CIFAR-100 without its names file.
    static func classNames(near path: String, classes: Int) -> [String] {
        var isDirectory: ObjCBool = false
        _ = FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
        let folder = isDirectory.boolValue ? path : (path as NSString).deletingLastPathComponent
        let file = classes == 10 ? "batches.meta.txt" : "fine_label_names.txt"
        if let text = try? String(contentsOfFile: (folder as NSString).appendingPathComponent(file), encoding: .utf8) {
            let names = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            if names.count == classes { return names }
        }
        return classes == 10 ? cifar10Names : (0..<classes).map(String.init)
    }
}

/// A class-per-subfolder folder of PNG and JPEG images (the class names are the subfolder
/// names, sorted) as an in-memory dataset: every image decoded once, converted to the
/// channels of the first (grey if all are grey, RGB otherwise) and resized to its size when
/// it differs. Files that cannot be used are reported on stderr and left out.
public enum ImageFolder {
    /// True when `path` holds subfolders (and no CIFAR binary files).
    public static func isClassFolder(_ path: String) -> Bool {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: path),
              !names.contains(where: { $0.hasSuffix(".bin") }) else { return false }
        return (try? classFolders(path))?.isEmpty == false
    }

    /// The subfolders of `path` (hidden ones left out), sorted: the class names.
    public static func classFolders(_ path: String) throws -> [String] {
        let fm = FileManager.default
        return try fm.contentsOfDirectory(atPath: path).filter { n in
            var d: ObjCBool = false
            return !n.hasPrefix(".") && fm.fileExists(atPath: path + "/" + n, isDirectory: &d) && d.boolValue
        }.sorted()
    }

    public static func load(_ path: String) throws -> (ImageDataset, [String]) {
        let classes = try classFolders(path)
        var files: [(String, Int)] = []
        var problems: [ImageError] = []
        for (label, name) in classes.enumerated() {
            do {
                let listing = try FolderListing.walk(path + "/" + name)
                files += listing.files.map { ($0, label) }
                problems += listing.problems
            } catch {
                problems.append(error)
            }
        }
        let paths = files.map(\.0)
        var decoded = [Image?](repeating: nil, count: files.count)
        var errors = [ImageError?](repeating: nil, count: files.count)
        decoded.withUnsafeMutableBufferPointer { d in
            errors.withUnsafeMutableBufferPointer { e in
                let dp = UnsafeSendable(d.baseAddress!), ep = UnsafeSendable(e.baseAddress!)
                DispatchQueue.concurrentPerform(iterations: files.count) { k in
                    do throws(ImageError) { (dp.value + k).pointee = try ImageDecoder.decodeChecked(path: paths[k]) } catch { (ep.value + k).pointee = error }
                }
            }
        }
        problems += errors.compactMap { $0 }
        for p in problems { writeStderr("kiln: skipped \(p.path): \(p.reason)\n") }
        let good = decoded.indices.filter { decoded[$0] != nil }
        guard let first = good.first.flatMap({ decoded[$0] }) else { throw DatasetError(path: path, message: "no usable PNG or JPEG images in its class subfolders") }
        let channels = good.contains { decoded[$0]!.channels >= 3 } ? 3 : 1
        let (w, h) = (first.width, first.height)
        var pixels = [UInt8]()
        pixels.reserveCapacity(good.count * channels * w * h)
        for k in good {
            let image = decoded[k]!.converted(to: channels)
            if image.width != w || image.height != h {
                for plane in image.resampledPlanes(width: w, height: h) { pixels += plane.map { UInt8(max(0, min(255, $0.rounded()))) } }
            } else {
                // HWC → CHW
                for c in 0..<channels { for i in 0..<(w * h) { pixels.append(image.pixels[i * channels + c]) } }
            }
        }
        let d = ImageDataset(imageShape: [channels, h, w], pixels: pixels, labels: good.map { files[$0].1 }, classes: classes.count)
        return (d, classes)
    }
}
