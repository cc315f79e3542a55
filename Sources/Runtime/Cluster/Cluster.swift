import CMPI
import Foundation

/// The processes of a data-parallel job: the ranks of an `mpirun` launch (Open MPI, loaded at
/// run time, see CMPI), or this one process. Collectives are over every rank; on one process
/// they are the identity.
public final class Cluster: @unchecked Sendable {
    public let rank: Int
    public let size: Int
    public var isDistributed: Bool { size > 1 }
    /// Rank 0: the one that writes outputs, metrics and checkpoints.
    public var isRoot: Bool { rank == 0 }

    init(rank: Int, size: Int) {
        self.rank = rank
        self.size = size
    }

    nonisolated(unsafe) private static var started: Cluster?

    /// The job's ranks when this process was launched by mpirun (MPI initialised on the
    /// first call), else one process. An mpirun launch whose MPI cannot be loaded is an error.
    public static func start() throws -> Cluster {
        if let started { return started }
        var message = [CChar](repeating: 0, count: 512)
        let r = kiln_mpi_init(&message, Int32(message.count))
        guard r >= 0 else { throw RuntimeError.kernel(node: "", op: "mpi", message: String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)) }
        let c = r == 1 ? Cluster(rank: Int(kiln_mpi_rank()), size: Int(kiln_mpi_size())) : Cluster(rank: 0, size: 1)
        started = c
        return c
    }

    /// The items of `0..<count` this rank handles: a contiguous share, ranks in order (the
    /// first `count % size` ranks take one more).
    public func share(of count: Int) -> Range<Int> {
        let base = count / size, extra = count % size
        let start = rank * base + min(rank, extra)
        return start..<(start + base + (rank < extra ? 1 : 0))
    }

    /// Sums `values` over all ranks, in place, on every rank.
    public func sum(_ values: UnsafeMutableBufferPointer<Float>) {
        guard isDistributed, let base = values.baseAddress else { return }
        _ = kiln_mpi_allreduce_sum_float(base, values.count)
    }

    public func sum(_ values: inout [Double]) {
        guard isDistributed else { return }
        values.withUnsafeMutableBufferPointer { _ = kiln_mpi_allreduce_sum_double($0.baseAddress!, $0.count) }
    }

    /// A sum over all ranks started in place without waiting (`values` must stay put until
    /// `wait`): MPI_Iallreduce.
    public func startSum(_ values: UnsafeMutableBufferPointer<Float>) -> Reduction {
        var request: UnsafeMutableRawPointer? = nil
        if isDistributed, let base = values.baseAddress { _ = kiln_mpi_iallreduce_sum_float(base, values.count, &request) }
        return Reduction(request: request)
    }

    /// A started sum.
    public final class Reduction {
        var request: UnsafeMutableRawPointer?
        var done: Bool
        init(request: UnsafeMutableRawPointer?) {
            self.request = request
            done = request == nil
        }
        /// Lets it progress; true once finished.
        @discardableResult public func test() -> Bool {
            if !done { done = kiln_mpi_test(&request) != 0 }
            return done
        }
        public func wait() {
            if !done { _ = kiln_mpi_wait(&request); done = true }
        }
    }

    /// Every rank's `value`, in rank order, on every rank.
    public func allGather(_ value: Int) -> [Int] {
        guard isDistributed else { return [value] }
        var out = [Int](repeating: 0, count: size)
        out.withUnsafeMutableBufferPointer { _ = kiln_mpi_allgather_long(value, $0.baseAddress!) }
        return out
    }

    /// Every rank's bytes concatenated in rank order on rank 0 (nil on the others).
    public func gather(_ bytes: [UInt8]) -> [UInt8]? {
        guard isDistributed else { return bytes }
        let counts = allGather(bytes.count)
        guard counts.reduce(0, +) <= Int(Int32.max) else {
            abort("the ranks' results (\(counts.reduce(0, +)) bytes) exceed one MPI message (2 GiB)")
        }
        let c32 = counts.map { Int32($0) }
        var out = [UInt8](repeating: 0, count: isRoot ? counts.reduce(0, +) : 0)
        bytes.withUnsafeBytes { b in
            out.withUnsafeMutableBytes { o in
                c32.withUnsafeBufferPointer { c in
                    _ = kiln_mpi_gather_bytes(b.baseAddress, Int32(bytes.count), isRoot ? o.baseAddress : nil, isRoot ? c.baseAddress : nil)
                }
            }
        }
        return isRoot ? out : nil
    }

    /// Ends every rank of the job: `message` (naming this rank) on stderr, then MPI_Abort.
    public func abort(_ message: String, code: Int32 = 1) -> Never {
        FileHandle.standardError.write(Data("kiln: error on rank \(rank) of \(size): \(message)\n".utf8))
        kiln_mpi_abort(code)
        fatalError("unreachable")
    }

    /// Ends MPI cleanly (every rank calls it once, at the end).
    public func finish() { if isDistributed { _ = kiln_mpi_finalize() } }
}
