//! Classification of an HTTP request into an S3 operation (phase 1).

use http::{HeaderMap, Method, Uri};

use super::{S3Error, S3Request};

/// `[s3] hosts` and `[s3] virtual_host_domains`, lower case, without ports.
#[derive(Clone, Debug, Default)]
pub struct Hosts {
    pub path_style: Vec<String>,
    pub virtual_host_domains: Vec<String>,
}

pub fn classify(method: &Method, uri: &Uri, headers: &HeaderMap, hosts: &Hosts) -> Result<S3Request, S3Error> {
    let _ = (method, uri, headers, hosts);
    todo!("s3::classify")
}
