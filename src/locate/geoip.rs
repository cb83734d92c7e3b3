//! GeoIP country lookups (MaxMind DB: GeoIP2/GeoLite2 Country or City, and
//! the flat DB-IP / ip-location-db country schema).
