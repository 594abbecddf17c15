//! Well-known WSUS category GUIDs (company, product families, products, classifications) that the
//! simulated catalog uses, with where each was checked.
//!
//! Classification GUIDs: `Get-WsusClassification` reference page (UpdateServices PowerShell
//! docs) and the Windows Update for Business deferral table (Upgrades). Company "Microsoft" and
//! product family "Windows": real WS2025 captures (`CaddyGlow/wsus-rs`
//! `docs/fixtures/wsus-m0-wsusss/docs/56309036-…-r101.xml`, `6964aab4-…-r100.xml`). Windows 10 /
//! Windows 11 / Defender: several WSUS admin scripts and the same inventory agree. "Microsoft Server
//! Operating System-24H2" (Windows Server 2025): one third-party source only **(unverified)**.
//! Office family and products have no checked GUID here: they are derived from the seed.

use uuid::{uuid, Uuid};

/// `Microsoft` (CategoryType Company).
pub const COMPANY_MICROSOFT: Uuid = uuid!("56309036-4c77-4dd9-951a-99ee9c246a94");
/// `Windows` (ProductFamily).
pub const FAMILY_WINDOWS: Uuid = uuid!("6964aab4-c5b5-43bd-a17d-ffb4346a8e1d");
/// `Windows 10` (Product).
pub const PRODUCT_WINDOWS_10: Uuid = uuid!("a3c2375d-0c8a-42f9-bce0-28333e198407");
/// `Windows 11` (Product).
pub const PRODUCT_WINDOWS_11: Uuid = uuid!("72e7624a-5b00-45d2-b92f-e561c0a6a160");
/// `Microsoft Server Operating System-24H2` (Windows Server 2025) **(one source)**.
pub const PRODUCT_SERVER_2025: Uuid = uuid!("b256987d-4693-4c87-955d-dbb9341205eb");
/// `Microsoft Defender Antivirus` (Product).
pub const PRODUCT_DEFENDER: Uuid = uuid!("8c3fcc84-7410-4a95-8b89-a166a0190486");

/// `Security Updates`.
pub const SECURITY_UPDATES: Uuid = uuid!("0fa1201d-4330-4fa8-8ae9-b877473b6441");
/// `Critical Updates`.
pub const CRITICAL_UPDATES: Uuid = uuid!("e6cf1350-c01b-414d-a61f-263d14d133b4");
/// `Definition Updates`.
pub const DEFINITION_UPDATES: Uuid = uuid!("e0789628-ce08-4437-be74-2495b842f43b");
/// `Updates`.
pub const UPDATES: Uuid = uuid!("cd5ffd1e-e932-4e3a-bf74-18bf0b1bbd83");
/// `Feature Packs`.
pub const FEATURE_PACKS: Uuid = uuid!("b54e7d24-7add-428f-8b75-90a396fa584f");
/// `Service Packs`.
pub const SERVICE_PACKS: Uuid = uuid!("68c5b0a3-d1a6-4553-ae49-01d3a7827828");
/// `Tools`.
pub const TOOLS: Uuid = uuid!("b4832bd8-e735-4761-8daf-37f882276dab");
/// `Update Rollups`.
pub const UPDATE_ROLLUPS: Uuid = uuid!("28bc880e-0592-4cbf-8f95-c79b17911d5f");
/// `Drivers`.
pub const DRIVERS: Uuid = uuid!("ebfc1fc5-71a4-4f7b-9aca-3b9a503104a0");
/// `Upgrades`.
pub const UPGRADES: Uuid = uuid!("3689bdc8-b205-4af4-8d4a-a63924c5e9d5");

/// Every classification the simulated catalog publishes, with its English title.
pub const CLASSIFICATIONS: [(Uuid, &str); 10] = [
    (SECURITY_UPDATES, "Security Updates"),
    (CRITICAL_UPDATES, "Critical Updates"),
    (DEFINITION_UPDATES, "Definition Updates"),
    (UPDATES, "Updates"),
    (FEATURE_PACKS, "Feature Packs"),
    (SERVICE_PACKS, "Service Packs"),
    (TOOLS, "Tools"),
    (UPDATE_ROLLUPS, "Update Rollups"),
    (DRIVERS, "Drivers"),
    (UPGRADES, "Upgrades"),
];

/// True when `id` is one of [`CLASSIFICATIONS`].
pub fn is_classification(id: &Uuid) -> bool {
    CLASSIFICATIONS.iter().any(|(c, _)| c == id)
}
