//! MS-WSUSSS and MS-WUSP wire types and the SOAP codec (quick-xml); update XML parsing. No I/O.
