// SPDX-License-Identifier: GPL-2.0

//! The guest: real-mode code, assembled by hand, that the VMM loads at [`CODE`]. Segments are
//! zero, so addresses are guest-physical; `ds` has a 4 GiB limit ("unreal mode"), so that
//! 32-bit addresses reach past the first 2 MiB. The guest talks to the VMM through port [`PORT`]:
//! each `out` of `eax` is one step of the story, checked by the VMM.

/// Where the code is loaded and starts: a shared page.
pub const CODE: u64 = 0x1000;
/// The shared I/O page: the guest writes its step there, the VMM reads it through its mapping.
pub const IO_PAGE: u64 = 0x2000;
/// The page the guest writes its message into, then shares with the VMM.
pub const MESSAGE: u64 = 0x3000;
/// A private page the guest stamps, which the VMM punches: in the second 2 MiB, which a
/// hugetlb-backed file keeps whole.
pub const STAMPED: u64 = 0x20_0000;
/// The guest's port to the VMM.
pub const PORT: u16 = 0x10;
/// What the guest stamps at [`STAMPED`].
pub const STAMP: u32 = 0x1122_3344;
/// What the guest writes at [`MESSAGE`].
pub const TEXT: &[u8] = b"Hello from the guest: written in private memory, read in place.";

/// `KVM_HC_MAP_GPA_RANGE`, and its attribute for private ("encrypted") memory.
pub const HC_MAP_GPA_RANGE: u64 = 12;
pub const MAP_GPA_RANGE_ENCRYPTED: u64 = 1 << 4;

/// Real-mode code being assembled.
struct Asm {
    bytes: Vec<u8>,
}

impl Asm {
    fn new() -> Self {
        Self { bytes: Vec::new() }
    }

    fn emit(&mut self, b: &[u8]) -> &mut Self {
        self.bytes.extend_from_slice(b);
        self
    }

    fn addr16(a: u64) -> [u8; 2] {
        u16::try_from(a).expect("a real-mode address").to_le_bytes()
    }

    fn addr32(a: u64) -> [u8; 4] {
        u32::try_from(a).expect("a 32-bit address").to_le_bytes()
    }

    /// `mov dword [addr32], imm32`
    fn store32(&mut self, addr: u64, v: u32) -> &mut Self {
        self.emit(&[0x67, 0x66, 0xc7, 0x05])
            .emit(&Self::addr32(addr))
            .emit(&v.to_le_bytes())
    }

    /// `mov byte [addr], imm8`
    fn store8(&mut self, addr: u64, v: u8) -> &mut Self {
        let a = Self::addr16(addr);
        self.emit(&[0xc6, 0x06, a[0], a[1], v])
    }

    /// `mov eax, dword [addr32]`
    fn load_eax(&mut self, addr: u64) -> &mut Self {
        self.emit(&[0x67, 0x66, 0xa1]).emit(&Self::addr32(addr))
    }

    /// `mov dx, PORT; out dx, eax`: a step, reporting `eax`.
    fn report(&mut self) -> &mut Self {
        let p = PORT.to_le_bytes();
        self.emit(&[0xba, p[0], p[1], 0x66, 0xef])
    }

    /// `KVM_HC_MAP_GPA_RANGE` of one page at `gpa`, to private or shared; `eax` gets the result.
    fn map_gpa_range(&mut self, gpa: u64, private: bool, vmmcall: bool) -> &mut Self {
        let attrs = if private { MAP_GPA_RANGE_ENCRYPTED } else { 0 } as u32;
        self.emit(&[0x66, 0xb8])
            .emit(&(HC_MAP_GPA_RANGE as u32).to_le_bytes())
            .emit(&[0x66, 0xbb])
            .emit(&(gpa as u32).to_le_bytes())
            .emit(&[0x66, 0xb9])
            .emit(&1u32.to_le_bytes())
            .emit(&[0x66, 0xba])
            .emit(&attrs.to_le_bytes())
            // vmmcall (AMD) or vmcall (Intel); KVM would patch the other.
            .emit(if vmmcall {
                &[0x0f, 0x01, 0xd9]
            } else {
                &[0x0f, 0x01, 0xc1]
            })
    }

    /// `cld; rep movsb` of `len` bytes from `src` to `dst`.
    fn copy(&mut self, src: u64, dst: u64, len: usize) -> &mut Self {
        let (s, d) = (Self::addr16(src), Self::addr16(dst));
        let n = u16::try_from(len).expect("a short copy").to_le_bytes();
        self.emit(&[
            0xbe, s[0], s[1], 0xbf, d[0], d[1], 0xb9, n[0], n[1], 0xfc, 0xf3, 0xa4,
        ])
    }

    fn hlt(&mut self) -> &mut Self {
        self.emit(&[0xf4])
    }
}

/// The steps the guest reports, in order, with the `eax` each carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Without conversions: [`STAMPED`] is stamped; 0.
    Stamped,
    /// The result of sharing [`MESSAGE`]: 0.
    Shared,
    /// What [`STAMPED`] reads after the VMM punched it: 0.
    ReadAfterPunch,
    /// The result of making [`MESSAGE`] private again: 0.
    PrivateAgain,
    /// The message's first four bytes, read once private again.
    MessageKept,
}

/// The guest's code, and the steps it reports. With `convert`, it writes its message, shares it
/// and takes it back; without (a guest_memfd that cannot convert in place), it only stamps a
/// page that the VMM punches.
pub fn code(convert: bool, vmmcall: bool) -> (Vec<u8>, Vec<Step>) {
    let mut a = Asm::new();
    let mut steps = Vec::new();
    a.store32(STAMPED, STAMP);
    // The text follows the code; its address is patched into the copy's `mov si, imm16` once the
    // code's length is known.
    let text_ref = a.bytes.len() + 1;
    if convert {
        a.copy(0, MESSAGE, TEXT.len()).store8(IO_PAGE, 1);
        a.map_gpa_range(MESSAGE, false, vmmcall).report();
        steps.push(Step::Shared);
    } else {
        // xor eax, eax
        a.store8(IO_PAGE, 1).emit(&[0x66, 0x31, 0xc0]).report();
        steps.push(Step::Stamped);
    }
    a.store8(IO_PAGE, 2).load_eax(STAMPED).report();
    steps.push(Step::ReadAfterPunch);
    if convert {
        a.store8(IO_PAGE, 3)
            .map_gpa_range(MESSAGE, true, vmmcall)
            .report();
        steps.push(Step::PrivateAgain);
        a.load_eax(MESSAGE).report();
        steps.push(Step::MessageKept);
    }
    a.hlt();
    let text_at = CODE + a.bytes.len() as u64;
    if convert {
        a.bytes[text_ref..text_ref + 2].copy_from_slice(&Asm::addr16(text_at));
    }
    a.emit(TEXT);
    (a.bytes, steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_address_is_patched_where_the_copy_reads_it() {
        let (bytes, steps) = code(true, true);
        assert_eq!(bytes[12], 0xbe, "mov si, imm16 follows the 12-byte stamp");
        let si = u16::from_le_bytes([bytes[13], bytes[14]]) as usize;
        let text = si - CODE as usize;
        assert_eq!(&bytes[text..], TEXT);
        assert_eq!(steps.len(), 4);
    }

    #[test]
    fn without_conversions_the_guest_reports_two_steps() {
        let (bytes, steps) = code(false, false);
        assert_eq!(steps, [Step::Stamped, Step::ReadAfterPunch]);
        assert!(bytes.ends_with(TEXT));
    }
}
