/// Arena planning: every value's storage gets a byte range in one arena such that no two
/// storages live at the same step overlap. Largest first, each at the lowest offset clear of
/// the placed storages whose lifetimes intersect its own (64-byte aligned).
public enum ArenaPlanner {
    /// The alignment of every storage, in bytes (a cache line; 16 floats).
    public static let alignment = 64

    /// A storage to place: its size and the steps it lives through (inputs from −1).
    public struct Request: Sendable, Equatable {
        public var bytes: Int
        public var first: Int
        public var last: Int
        public init(bytes: Int, first: Int, last: Int) {
            self.bytes = bytes
            self.first = first
            self.last = last
        }
        func overlapsInTime(_ o: Request) -> Bool { first <= o.last && o.first <= last }
    }

    /// Byte offsets for `requests` (in their order) and the arena's size.
    public static func place(_ requests: [Request]) -> (offsets: [Int], bytes: Int) {
        func aligned(_ n: Int) -> Int { (n + alignment - 1) / alignment * alignment }
        var offsets = [Int](repeating: 0, count: requests.count)
        var placed: [Int] = []
        var arena = 0
        for s in requests.indices.sorted(by: { requests[$0].bytes > requests[$1].bytes }) {
            let size = aligned(requests[s].bytes)
            var busy: [(Int, Int)] = placed.compactMap { p in
                requests[p].overlapsInTime(requests[s]) ? (offsets[p], offsets[p] + aligned(requests[p].bytes)) : nil
            }
            busy.sort { $0.0 < $1.0 }
            var offset = 0
            for (lo, hi) in busy {
                if offset + size <= lo { break }
                offset = max(offset, hi)
            }
            offsets[s] = offset
            arena = max(arena, offset + size)
            placed.append(s)
        }
        return (offsets, arena)
    }
}
