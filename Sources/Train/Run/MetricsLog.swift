import Foundation

/// `metrics.jsonl`: one JSON object per finished epoch. On resume the lines of epochs after
/// the checkpoint (written before a kill) are dropped.
public struct MetricsLog {
    public static let fileName = "metrics.jsonl"
    let path: String

    public init(runDirectory: String, keepingEpochs kept: Int) throws {
        path = (runDirectory as NSString).appendingPathComponent(Self.fileName)
        var lines: [String] = []
        if let text = try? String(contentsOfFile: path, encoding: .utf8) {
            for line in text.split(separator: "\n") {
                guard let d = line.data(using: .utf8), let r = try? JSONDecoder().decode(EpochReport.self, from: d), r.epoch <= kept else { continue }
                lines.append(String(line))
            }
        }
        try AtomicFile.write(Array(lines.map { $0 + "\n" }.joined().utf8), to: path)
    }

    /// The reports in the file, in order.
    public func reports() -> [EpochReport] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { try? JSONDecoder().decode(EpochReport.self, from: Data($0.utf8)) }
    }

    public func append(_ r: EpochReport) throws {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        var line = try e.encode(r)
        line.append(0x0A)
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw TrainError("\(path): cannot open: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let ok = line.withUnsafeBytes { Glibc.write(fd, $0.baseAddress!, $0.count) == $0.count }
        guard ok, fsync(fd) == 0 else { throw TrainError("\(path): cannot write: \(String(cString: strerror(errno)))") }
    }
}
