import CKernels
import Compiler
import Foundation
import Graph

/// This CPU as the tuning cache names it: vendor, family, model and stepping with the model
/// name (a virtual machine's name alone — "AMD EPYC" — does not tell Zen 2 from Zen 4), and
/// the kernel level the process runs.
public enum CPUIdentity {
    /// /proc/cpuinfo's fields of the first processor ("unknown" where there is none).
    static let fields: [String: String] = {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return [:] }
        var out: [String: String] = [:]
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.isEmpty { break }  // the first processor's block ends at the first blank line
            guard let colon = line.firstIndex(of: ":") else { continue }
            out[line[..<colon].trimmingCharacters(in: .whitespaces)] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return out
    }()

    /// The model name ("unknown" where /proc/cpuinfo has none).
    public static var modelName: String { fields["model name"] ?? "unknown" }

    /// "AuthenticAMD 23/49/0 AMD EPYC avx2": what a tuned choice holds for.
    public static var key: String {
        let f = fields
        return "\(f["vendor_id"] ?? "unknown") \(f["cpu family"] ?? "?")/\(f["model"] ?? "?")/\(f["stepping"] ?? "?") \(modelName) \(KernelLevel.name)"
    }
}

/// Convolution algorithms chosen by measuring them on this CPU (issue 16, item 4). Where the
/// kernels have more than one way to run a convolution (Winograd, the direct kernel, im2col
/// and the packed product), the first compile that meets its shape measures each candidate
/// in the network itself — the graph compiled once per candidate index (every untuned
/// convolution on its first, second, third candidate), each run a few times with per-step
/// timing — so a kernel is timed with its weights as cold and its input as warm as they are in
/// the network. Each convolution takes the fastest: the heuristic's choice unless another is
/// at least 5 % faster (convolutions of one shape decide together, on their summed times).
/// Choices are cached per CPU (`CPUIdentity.key`) in `directory` (KILN_CACHE_DIR, else
/// $XDG_CACHE_HOME/kiln, else ~/.cache/kiln): one JSON file per CPU with each shape's choice
/// and measured times, read by later compiles in any process of the same Kiln version
/// (remove the file to measure again after changing kernels). A choice is the shape's, for
/// every batch size and thread count (measured at the first compile's), so that a model gives
/// the same results at any batch and split over any number of processes; ranks under mpirun
/// only read the cache (they would measure at once, on shared cores), the built-in rule
/// standing in for shapes not in it. Compiles with `CompileOptions.tune` false (`--no-tune`,
/// KILN_TUNE=0) take the heuristic's choices.
public final class Tuner: @unchecked Sendable {
    /// The process's tuner, on the default cache folder.
    public static let shared = Tuner(directory: Tuner.defaultDirectory)

    /// KILN_CACHE_DIR, else $XDG_CACHE_HOME/kiln, else ~/.cache/kiln (nil without a home).
    public static var defaultDirectory: URL? {
        let env = ProcessInfo.processInfo.environment
        if let d = env["KILN_CACHE_DIR"], !d.isEmpty { return URL(fileURLWithPath: d) }
        if let d = env["XDG_CACHE_HOME"], !d.isEmpty { return URL(fileURLWithPath: d).appendingPathComponent("kiln") }
        let home = NSHomeDirectory()
        return home.isEmpty ? nil : URL(fileURLWithPath: home).appendingPathComponent(".cache/kiln")
    }

    /// One measured shape: the choice and every candidate's time in microseconds (the best
    /// run of each convolution of the shape, summed over them).
    public struct Entry: Codable, Sendable, Equatable {
        public var algorithm: String
        public var microseconds: [String: Double]
    }

    /// The file's form: which CPU and which Kiln measured (another version's kernels may
    /// rank differently: its file is measured again), and the choices.
    struct CacheFile: Codable {
        var cpu: String
        var kiln: String
        var entries: [String: Entry]

        /// The file at `url` if it holds this CPU's and this version's choices.
        static func read(_ url: URL) -> CacheFile? {
            guard let data = try? Data(contentsOf: url), let cache = try? JSONDecoder().decode(CacheFile.self, from: data),
                  cache.cpu == CPUIdentity.key, cache.kiln == kilnVersion else { return nil }
            return cache
        }
    }

    /// The cache file for this CPU (nil: choices live only in this process).
    public let file: URL?
    private let lock = NSLock()
    private let measuring = NSLock()
    private var loaded = false
    private var entries: [String: Entry] = [:]

    public init(directory: URL?) {
        let name = CPUIdentity.key.map { $0.isLetter || $0.isNumber ? $0 : "-" }
        file = directory?.appendingPathComponent("tuning-\(String(name)).json")
    }

    /// Every cached choice, by shape key (loading the file on first use).
    public var choices: [String: Entry] {
        lock.lock()
        defer { lock.unlock() }
        loadLocked()
        return entries
    }

    private func loadLocked() {
        guard !loaded else { return }
        loaded = true
        guard let file, let cache = CacheFile.read(file) else { return }
        entries.merge(cache.entries) { mine, _ in mine }
    }

    /// Adds `new` and writes the file (atomically, merged with what another process may have
    /// written since): a cache that cannot be written only costs measuring again.
    private func save(_ new: [String: Entry]) {
        lock.lock()
        defer { lock.unlock() }
        loadLocked()
        entries.merge(new) { _, fresh in fresh }
        guard let file else { return }
        var all = entries
        if let cache = CacheFile.read(file) { all.merge(cache.entries) { mine, _ in mine } }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        guard let data = try? encoder.encode(CacheFile(cpu: CPUIdentity.key, kiln: kilnVersion, entries: all)) else { return }
        try? FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try? data.write(to: file, options: .atomic)
    }

    /// Whether this process is one of several ranks of an mpirun job.
    static let isRank = (ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_SIZE"].flatMap { Int($0) } ?? 1) > 1

    /// `g` (bound to `batch`, after the inference passes) with every convolution that has
    /// more than one candidate set to its shape's choice: cached, or measured now at `batch`
    /// and `threads`.
    public func tuned(_ g: Graph, batch: Int, threads: Int) -> Graph {
        var out = g
        let known = choices
        var open: [(node: Int, key: String, candidates: [ConvAlgorithm])] = []
        let types = g.valueTypes
        for i in g.nodes.indices {
            let n = g.nodes[i]
            guard n.domain == "kiln", n.op == "FusedConv" else { continue }
            let candidates = convAlgorithmCandidates(n, g)
            guard candidates.count > 1, let key = Self.key(n, g, types: types) else { continue }
            if let entry = known[key] {
                if let a = ConvAlgorithm(rawValue: entry.algorithm), candidates.contains(a) { out.nodes[i].attributes["algorithm"] = .string(a.rawValue) }
            } else {
                open.append((i, key, candidates))
            }
        }
        guard !open.isEmpty, !Self.isRank else { return out }
        measuring.lock()
        let fresh = measure(out, open, batch: batch, threads: threads)
        measuring.unlock()
        for (i, key, candidates) in open {
            if let entry = fresh[key], let a = ConvAlgorithm(rawValue: entry.algorithm), candidates.contains(a) {
                out.nodes[i].attributes["algorithm"] = .string(a.rawValue)
            }
        }
        if !fresh.isEmpty { save(fresh) }
        return out
    }

    /// Compiles `g` once per candidate index (convolution j of `open` on its candidate v, or
    /// its first where it has fewer), runs each a few times timing every step, and chooses per
    /// shape. Variants are compiled and run one after another (one network's memory at a time),
    /// each until it has run 5 times or 0.3 s.
    func measure(_ g: Graph, _ open: [(node: Int, key: String, candidates: [ConvAlgorithm])], batch: Int, threads: Int) -> [String: Entry] {
        let variants = open.map(\.candidates.count).max() ?? 1
        // times[j][v]: convolution j's best step time on candidate v (nil: not measured).
        var times = [[Double?]](repeating: [Double?](repeating: nil, count: variants), count: open.count)
        for v in 0..<variants {
            var variant = g
            for o in open where v < o.candidates.count {
                variant.nodes[o.node].attributes["algorithm"] = .string(o.candidates[v].rawValue)
            }
            guard let model = try? CompiledModel.compile(variant, batch: batch, threads: threads, passes: [], options: CompileOptions(tune: false)),
                  (try? model.execute()) != nil else { continue }
            // Steps by the name of the node they run (a convolution keeps its node's name).
            var stepOf: [String: Int] = [:]
            for (k, step) in model.program.steps.enumerated() { stepOf[step.name] = k }
            var best = [Double](repeating: .infinity, count: model.program.steps.count)
            var runs = 0, spent = 0.0
            repeat {
                let t0 = DispatchTime.now().uptimeNanoseconds
                guard (try? model.execute(timing: { k, dt in best[k] = min(best[k], dt) })) != nil else { break }
                spent += Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
                runs += 1
            } while runs < 5 && spent < 0.3 || runs < 2
            for (j, o) in open.enumerated() where v < o.candidates.count {
                if let k = stepOf[g.nodes[o.node].name], best[k].isFinite { times[j][v] = best[k] }
            }
        }
        // Per shape: each candidate's time summed over its convolutions (all of them measured).
        var out: [String: Entry] = [:]
        for key in Set(open.map(\.key)) {
            let members = open.indices.filter { open[$0].key == key }
            let candidates = open[members[0]].candidates
            var total: [ConvAlgorithm: Double] = [:]
            for (v, a) in candidates.enumerated() {
                let ts = members.map { times[$0][v] }
                if ts.allSatisfy({ $0 != nil }) { total[a] = ts.reduce(0) { $0 + $1! } }
            }
            guard let fastest = total.min(by: { $0.value < $1.value }) else { continue }
            let heuristic = candidates[0]
            let chosen = total[heuristic].map { fastest.value > $0 * 0.95 } == true ? heuristic : fastest.key
            out[key] = Entry(algorithm: chosen.rawValue, microseconds: total.reduce(into: [:]) { $0[$1.key.rawValue] = ($1.value * 1e7).rounded() / 10 })
        }
        return out
    }

    /// What a choice depends on: an image's input and output shapes, the weight's, which
    /// optional inputs there are, and every attribute but the choice itself.
    static func key(_ n: Node, _ g: Graph, types: [String: TensorType]) -> String? {
        guard let x = types[n.inputs[0]]?.shape.staticSizes, let w = g.parameter(named: n.inputs[1])?.shape,
              let y = n.outputs.first?.type.shape.staticSizes, x.count > 1, y.count > 1 else { return nil }
        let optional = n.inputs.dropFirst(2).map { $0.isEmpty ? "-" : "+" }.joined()
        let attributes = n.attributes.keys.sorted().filter { $0 != "algorithm" }.map { "\($0)=\(n.attributes[$0]!)" }.joined(separator: " ")
        // A convolution the int8 kernel can run has that candidate too: a key of its own.
        let narrow = n.attributes["algorithm"] == .string(ConvAlgorithm.int8.rawValue) ? " int8"
            : n.attributes["algorithm"] == .string(ConvAlgorithm.bf16.rawValue) ? " bf16" : ""
        return "conv x\(Array(x.dropFirst())) w\(w) y\(Array(y.dropFirst())) in\(optional) \(attributes)\(narrow)"
    }
}
