import Foundation

/// Paths, compactly: each folder's path once, each file's name in one byte buffer. A
/// million paths of a two-level tree take ~20 MB (as Swift strings, ~100 MB). Elements are
/// the full paths, made when read.
public struct PathList: RandomAccessCollection, Sendable {
    public internal(set) var folders: [String] = []
    var nameBytes: [UInt8] = []
    var nameEnd: [Int] = []
    var folderOf: [UInt32] = []

    public init() {}
    public init<S: Sequence>(_ paths: S) where S.Element == String {
        for p in paths {
            let slash = p.utf8.lastIndex(of: UInt8(ascii: "/"))
            let folder = slash.map { String(p[..<$0]) } ?? "", name = slash.map { String(p[p.index(after: $0)...]) } ?? p
            if folders.last != folder { folders.append(folder) }
            append(name: name, folder: folders.count - 1)
        }
    }

    public var startIndex: Int { 0 }
    public var endIndex: Int { nameEnd.count }
    public subscript(i: Int) -> String {
        let folder = folders[Int(folderOf[i])]
        let name = String(decoding: nameBytes[nameRange(i)], as: UTF8.self)
        return folder.isEmpty ? name : folder.hasSuffix("/") ? folder + name : folder + "/" + name
    }

    func nameRange(_ k: Int) -> Range<Int> { (k == 0 ? 0 : nameEnd[k - 1])..<nameEnd[k] }

    mutating func append(name: String, folder: Int) {
        nameBytes.append(contentsOf: name.utf8)
        nameEnd.append(nameBytes.count)
        folderOf.append(UInt32(folder))
    }

    /// Appends another list's paths (its folders added after this list's).
    public mutating func append(contentsOf other: PathList) {
        let base = folders.count, bytes = nameBytes.count
        folders += other.folders
        nameBytes += other.nameBytes
        nameEnd += other.nameEnd.map { $0 + bytes }
        folderOf += other.folderOf.map { $0 + UInt32(base) }
    }

    /// The bytes of path `i` (folder, separator, name) compared with path `j`'s, without
    /// making either string.
    func precedes(_ i: Int, _ j: Int) -> Bool {
        func parts(_ k: Int) -> (String.UTF8View, Bool, ArraySlice<UInt8>) {
            let f = folders[Int(folderOf[k])]
            return (f.utf8, !f.isEmpty && !f.hasSuffix("/"), nameBytes[nameRange(k)])
        }
        let (fa, sa, na) = parts(i), (fb, sb, nb) = parts(j)
        var a = fa.makeIterator(), b = fb.makeIterator()
        var ia = na.makeIterator(), ib = nb.makeIterator()
        var aSlash = sa, bSlash = sb
        func next(_ f: inout String.UTF8View.Iterator, _ slash: inout Bool, _ n: inout IndexingIterator<ArraySlice<UInt8>>) -> UInt8? {
            if let c = f.next() { return c }
            if slash { slash = false; return UInt8(ascii: "/") }
            return n.next()
        }
        while true {
            let x = next(&a, &aSlash, &ia), y = next(&b, &bSlash, &ib)
            guard let x else { return y != nil }
            guard let y else { return false }
            if x != y { return x < y }
        }
    }

    /// Sorted by full path, byte order.
    mutating func sort() {
        let order = indices.sorted { precedes($0, $1) }
        var sorted = PathList()
        sorted.folders = folders
        sorted.nameBytes.reserveCapacity(nameBytes.count)
        sorted.nameEnd.reserveCapacity(count)
        sorted.folderOf.reserveCapacity(count)
        for k in order {
            sorted.nameBytes += nameBytes[nameRange(k)]
            sorted.nameEnd.append(sorted.nameBytes.count)
            sorted.folderOf.append(folderOf[k])
        }
        self = sorted
    }
}

/// The image files of a folder tree, in a stable order, and the entries that cannot be
/// images (each with a reason).
public struct FolderListing: Sendable {
    /// Paths of candidate images (known image extensions), sorted by path (byte order).
    public var files: PathList
    /// Entries skipped while walking: symlink loops, dangling links, unreadable folders,
    /// unsupported image formats.
    public var problems: [ImageError]
    /// Files ignored because their extension is not an image's (README.txt, labels.csv, …).
    public var ignored: Int

    public static let decodable: Set<String> = ["png", "jpg", "jpeg", "jpe", "jfif"]
    public static let unsupported: Set<String> = ["gif", "bmp", "webp", "tif", "tiff", "heic", "heif", "avif", "ppm", "pgm", "ico"]

    /// Walks `root` recursively, following symbolic links but never into a folder already
    /// on the current path (a loop). Hidden entries (names starting with '.') are skipped.
    public static func walk(_ root: String) throws(ImageError) -> FolderListing {
        var st = stat()
        guard stat(root, &st) == 0 else { throw ImageError(path: root, reason: String(cString: strerror(errno))) }
        guard st.st_mode & S_IFMT == S_IFDIR else { throw ImageError(path: root, reason: "not a folder") }
        var listing = FolderListing(files: PathList(), problems: [], ignored: 0)
        listing.visit(root, ancestors: [FileID(st)])
        listing.files.sort()
        listing.problems.sort { $0.path.utf8.lexicographicallyPrecedes($1.path.utf8) }
        return listing
    }

    struct FileID: Hashable {
        let device: UInt64, inode: UInt64
        init(_ s: stat) {
            device = UInt64(s.st_dev)
            inode = UInt64(s.st_ino)
        }
    }

    mutating func visit(_ folder: String, ancestors: Set<FileID>) {
        guard let dir = opendir(folder) else {
            problems.append(ImageError(path: folder, reason: "cannot open folder: \(String(cString: strerror(errno)))"))
            return
        }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) { String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self)) }
            if name.hasPrefix(".") { continue }
            names.append(name)
        }
        closedir(dir)
        var folderIndex: Int? = nil
        for name in names {
            let path = folder.hasSuffix("/") ? folder + name : folder + "/" + name
            var st = stat()
            guard stat(path, &st) == 0 else {
                let e = errno
                var lst = stat()
                let isLink = lstat(path, &lst) == 0 && lst.st_mode & S_IFMT == S_IFLNK
                problems.append(ImageError(path: path, reason: e == ELOOP ? "symbolic link loop"
                                           : isLink ? "dangling symbolic link" : String(cString: strerror(e))))
                continue
            }
            switch st.st_mode & S_IFMT {
            case S_IFDIR:
                let id = FileID(st)
                if ancestors.contains(id) {
                    problems.append(ImageError(path: path, reason: "symbolic link loop (leads back to a folder above it)"))
                } else {
                    visit(path, ancestors: ancestors.union([id]))
                }
            case S_IFREG:
                let ext = (name as NSString).pathExtension.lowercased()
                if Self.decodable.contains(ext) {
                    if folderIndex == nil {
                        files.folders.append(folder)
                        folderIndex = files.folders.count - 1
                    }
                    files.append(name: name, folder: folderIndex!)
                } else if Self.unsupported.contains(ext) {
                    problems.append(ImageError(path: path, reason: "unsupported image format .\(ext) (Kiln reads PNG and JPEG)"))
                } else {
                    ignored += 1
                }
            default:
                ignored += 1
            }
        }
    }
}

extension ImageDecoder {
    /// Decodes a file found by a folder walk: as `decode(path:)`, and the content must match
    /// the extension (a JPEG named .png is reported, not guessed at).
    public static func decodeChecked(path: String, pixelLimit: Int = defaultPixelLimit) throws(ImageError) -> Image {
        let ext = (path as NSString).pathExtension.lowercased()
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw ImageError(path: path, reason: errno == EACCES ? "permission denied" : String(cString: strerror(errno)))
        }
        var st = stat()
        guard fstat(fd, &st) == 0 else { close(fd); throw ImageError(path: path, reason: String(cString: strerror(errno))) }
        let size = Int(st.st_size)
        guard size > 0 else { close(fd); throw ImageError(path: path, reason: "empty file (0 bytes)") }
        guard size < 1 << 30 else { close(fd); throw ImageError(path: path, reason: "file of \(size >> 20) MiB is larger than 1 GiB") }
        var bytes = [UInt8](repeating: 0, count: size)
        var got = 0
        while got < size {
            let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + got, size - got) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            got += n
        }
        close(fd)
        guard got == size else { throw ImageError(path: path, reason: "read \(got) of \(size) bytes") }
        let isPNG = bytes.starts(with: [0x89, 0x50, 0x4E, 0x47]), isJPEG = bytes.starts(with: [0xFF, 0xD8])
        if isPNG && ext != "png" { throw ImageError(path: path, reason: "wrong extension: the content is PNG, the name says .\(ext)") }
        if isJPEG && ext == "png" { throw ImageError(path: path, reason: "wrong extension: the content is JPEG, the name says .png") }
        return try decode(bytes: bytes, name: path, pixelLimit: pixelLimit)
    }
}
