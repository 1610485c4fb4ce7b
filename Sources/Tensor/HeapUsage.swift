#if os(Linux)
import CBLAS  // its shim includes <malloc.h>
#endif

/// Live memory of the C allocator, which Swift's own allocations also go through.
public enum HeapUsage {
    /// Bytes handed out by malloc and not yet freed (glibc `mallinfo2`: heap chunks in use plus
    /// mmapped blocks); nil where glibc does not say. Unlike the resident set it does not count
    /// freed memory the heap keeps (`BLAS.configure` leaves up to 1 GiB untrimmed), so it is the
    /// figure a leak check compares.
    public static func inUseBytes() -> Double? {
        #if os(Linux)
        let info = mallinfo2()
        return Double(info.uordblks) + Double(info.hblkhd)
        #else
        return nil
        #endif
    }
}
