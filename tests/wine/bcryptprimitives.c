/*
 * bcryptprimitives.dll for Debian's Wine 8, which lacks it: `ProcessPrng`, the one function of it
 * that Rust's standard library (>= 1.78) calls on Windows to get random bytes (HashMap seeds and
 * every random number the programs ask std for), over `RtlGenRandom` (SystemFunction036 of
 * advapi32), which Wine has. Test infrastructure only: scripts/test-cross.sh builds it with
 * mingw-w64 and puts it in the test Wine prefix's system32; on Windows itself the real DLL is
 * there (Windows 10 and later).
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

/* Always TRUE, as Windows documents ProcessPrng; a failure of the source cannot be reported. */
BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x40000000 ? 0x40000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk)) {
            ExitProcess(3);
        }
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
