use super::assert_refused;
use crate::s3::replication::{destinations, MAX_CONFIG_BODY};
use crate::s3::{ConfigBody, Destination};

fn dest(bucket: &str, prefix: &str) -> Destination {
    Destination {
        bucket: bucket.into(),
        prefix: prefix.into(),
    }
}

const S3: &str = "http://s3.amazonaws.com/doc/2006-03-01/";
const NS: &str = r#"xmlns="http://s3.amazonaws.com/doc/2006-03-01/""#;

#[test]
fn replication_destinations() {
    let cases: &[(&str, &[(&str, &str)])] = &[
        (
            r#"<?xml version="1.0" encoding="UTF-8"?>
<ReplicationConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Role>arn:aws:iam::123456789012:role/replication</Role>
  <Rule>
    <ID>hr</ID><Status>Enabled</Status><Priority>1</Priority>
    <Filter><Prefix>staff/</Prefix></Filter>
    <DeleteMarkerReplication><Status>Disabled</Status></DeleteMarkerReplication>
    <Destination><Bucket>arn:aws:s3:::acme-backup</Bucket><StorageClass>STANDARD</StorageClass></Destination>
  </Rule>
  <Rule>
    <Status>Enabled</Status>
    <Filter><And><Prefix>logs/</Prefix><Tag><Key>k</Key><Value>v</Value></Tag></And></Filter>
    <Destination><Bucket>arn:aws:s3:::acme-logs-sg</Bucket></Destination>
  </Rule>
  <Rule><Status>Enabled</Status><Filter/><Destination><Bucket>arn:aws:s3:::everything</Bucket></Destination></Rule>
  <Rule><Status>Enabled</Status><Filter><Tag><Key>k</Key><Value>v</Value></Tag></Filter><Destination><Bucket>arn:aws:s3:::tagged</Bucket></Destination></Rule>
</ReplicationConfiguration>"#,
            &[("acme-backup", "staff/"), ("acme-logs-sg", "logs/"), ("everything", ""), ("tagged", "")],
        ),
        // V1 schema, no namespace, no declaration
        (
            "<ReplicationConfiguration><Rule><Prefix>a/</Prefix><Status>Enabled</Status>\
             <Destination><Bucket>arn:aws:s3:::dst-one</Bucket></Destination></Rule></ReplicationConfiguration>",
            &[("dst-one", "a/")],
        ),
        // the text is read exactly: entities, CDATA, comments, spaces kept
        (
            "<ReplicationConfiguration><Rule><Filter><Prefix> a&amp;b&#x2F;<![CDATA[<c>]]><!-- x -->d</Prefix></Filter>\
             <Destination><Bucket>arn:aws:s3:::dst-two</Bucket></Destination></Rule></ReplicationConfiguration>",
            &[("dst-two", " a&b/<c>d")],
        ),
        (
            "<ReplicationConfiguration><Rule><Filter><Prefix/></Filter>\
             <Destination><Bucket>arn:aws-cn:s3:::cn-dst</Bucket></Destination></Rule></ReplicationConfiguration>",
            &[("cn-dst", "")],
        ),
        ("<ReplicationConfiguration><Role>r</Role></ReplicationConfiguration>", &[]),
        ("\u{FEFF}<ReplicationConfiguration/>", &[]),
    ];
    for (xml, want) in cases {
        let got = destinations(ConfigBody::Replication, xml.as_bytes())
            .unwrap_or_else(|e| panic!("{e}\n{xml}"));
        let want: Vec<_> = want.iter().map(|(b, p)| dest(b, p)).collect();
        assert_eq!(got, want, "{xml}");
    }
}

fn rule(inner: &str) -> String {
    format!("<ReplicationConfiguration {NS}><Rule>{inner}</Rule></ReplicationConfiguration>")
}

const GOOD_RULE: &str = "<Destination><Bucket>arn:aws:s3:::dst-bucket</Bucket></Destination>";

const MX: &str = "MalformedXML";
const IA: &str = "InvalidArgument";
const NOT_ARN: &str = "is not arn:aws:s3:::<bucket>";

#[test]
fn replication_refusals() {
    let doctype = r#"<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x "arn:aws:s3:::evil">]>"#;
    let oversized = format!(
        "<ReplicationConfiguration><Role>{}</Role></ReplicationConfiguration>",
        "x".repeat(MAX_CONFIG_BODY)
    );
    let root = |attrs: &str| {
        format!(
            "<ReplicationConfiguration {attrs}><Rule>{GOOD_RULE}</Rule></ReplicationConfiguration>"
        )
    };
    #[rustfmt::skip]
    let cases: Vec<(String, &str, &str)> = vec![
        // what another XML parser could expand or resolve differently
        (format!("{doctype}{}", rule("<Destination><Bucket>&x;</Bucket></Destination>")), MX, "DOCTYPE"),
        (rule("<Destination><Bucket>&x;</Bucket></Destination>"), MX, "unparsable"),
        (rule("<Destination><Bucket>&lol;arn:aws:s3:::a</Bucket></Destination>"), MX, "unparsable"),
        (format!("<?xml-stylesheet href=\"a\"?>{}", rule(GOOD_RULE)), MX, "processing instruction"),
        (rule(&format!("<?php x?>{GOOD_RULE}")), MX, "processing instruction"),
        (format!("<?xml version=\"1.0\"?><?xml version=\"1.0\"?>{}", rule(GOOD_RULE)), MX, "processing instruction"),
        (format!(" <?xml version=\"1.0\"?>{}", rule(GOOD_RULE)), MX, "processing instruction"),
        (format!("<?xml version=\"1.0\" encoding=\"UTF-16\"?>{}", rule(GOOD_RULE)), MX, "UTF-8"),
        (oversized, MX, "1 MiB"),
        // namespaces: S3's or none, and no prefixes
        (root("xmlns=\"http://example.com/\""), MX, "not S3's"),
        (root("xmlns=\"http://s3.amazonaws.com/doc/2006-03-01\""), MX, "not S3's"),
        (rule(&format!("<Destination xmlns=\"http://example.com/\">{GOOD_RULE}</Destination>")), MX, "changes the namespace"),
        (rule("<Destination xmlns=\"\"><Bucket>arn:aws:s3:::dst-bucket</Bucket></Destination>"), MX, "changes the namespace"),
        (format!("<s3:ReplicationConfiguration xmlns:s3=\"{S3}\"><s3:Rule>{GOOD_RULE}</s3:Rule></s3:ReplicationConfiguration>"), MX, "prefixes are refused"),
        (rule(&format!("<x:Destination xmlns:x=\"http://example.com/\"><Bucket>arn:aws:s3:::a-b-c</Bucket></x:Destination>{GOOD_RULE}")), MX, "prefixes are refused"),
        // structure
        (format!("<InventoryConfiguration>{GOOD_RULE}</InventoryConfiguration>"), MX, "root element must be <ReplicationConfiguration>"),
        (format!("{}{}", rule(GOOD_RULE), rule(GOOD_RULE)), MX, "root element"),
        (format!("{}junk", rule(GOOD_RULE)), MX, "text outside"),
        ("just text".into(), MX, "text outside"),
        (String::new(), MX, "no <ReplicationConfiguration>"),
        ("<ReplicationConfiguration><Rule>".into(), MX, "<Rule> is never closed"),
        (rule("<Destination><Bucket>arn:aws:s3:::a-b-c"), MX, "unparsable"),
        (rule("<Destination><Bucket>arn:aws:s3:::a-b-c</Destination></Bucket>"), MX, "unparsable"),
        (rule("<Status>Enabled</Status>"), MX, "without <Bucket>"),
        (rule("<Destination><Account>1</Account></Destination>"), MX, "without <Bucket>"),
        (rule(&format!("{GOOD_RULE}{GOOD_RULE}")), MX, "<Bucket> given twice"),
        (rule(&format!("<Prefix>a</Prefix><Filter><Prefix>b</Prefix></Filter>{GOOD_RULE}")), MX, "<Prefix> given twice"),
        (rule(&format!("<Filter><Prefix>a</Prefix><And><Prefix>b</Prefix></And></Filter>{GOOD_RULE}")), MX, "<Prefix> given twice"),
        (rule("<Destination><Bucket><Arn>arn:aws:s3:::a-b-c</Arn></Bucket></Destination>"), MX, "element inside <Bucket>"),
        // destinations that are not a plain bucket's ARN
        (rule("<Destination><Bucket>dst-bucket</Bucket></Destination>"), IA, NOT_ARN),
        (rule("<Destination><Bucket> arn:aws:s3:::dst-bucket</Bucket></Destination>"), IA, NOT_ARN),
        (rule("<Destination><Bucket>arn:aws:s3:::Dst</Bucket></Destination>"), IA, NOT_ARN),
        (rule("<Destination><Bucket>arn:aws:s3:::dst/prefix</Bucket></Destination>"), IA, NOT_ARN),
        (rule("<Destination><Bucket>arn:aws:s3:us-east-1:123456789012:accesspoint/ap</Bucket></Destination>"), IA, NOT_ARN),
        (rule("<Destination><Bucket>arn:aws:s3:::ap-1-s3alias</Bucket></Destination>"), IA, NOT_ARN),
        (rule("<Destination><Bucket>arn:aws:s3:::</Bucket></Destination>"), IA, NOT_ARN),
        (rule("<Destination><Bucket></Bucket></Destination>"), IA, NOT_ARN),
    ];
    for (xml, code, why) in cases {
        let shown: String = xml.chars().take(200).collect();
        assert_refused(
            destinations(ConfigBody::Replication, xml.as_bytes()),
            400,
            code,
            why,
            &shown,
        );
    }

    let mut not_utf8 = rule(GOOD_RULE).into_bytes();
    let at = not_utf8.iter().rposition(|&b| b == b'-').unwrap();
    not_utf8[at] = 0xff;
    for (body, case) in [
        (&not_utf8[..], "invalid UTF-8"),
        (&[0xff, 0xfe, b'<', 0], "UTF-16"),
    ] {
        assert_refused(
            destinations(ConfigBody::Replication, body),
            400,
            MX,
            "unparsable",
            case,
        );
    }
}

#[test]
fn body_at_the_cap_is_read() {
    let head = "<ReplicationConfiguration><Role>";
    let tail = "</Role></ReplicationConfiguration>";
    let xml = format!(
        "{head}{}{tail}",
        "x".repeat(MAX_CONFIG_BODY - head.len() - tail.len())
    );
    assert_eq!(xml.len(), MAX_CONFIG_BODY);
    assert_eq!(
        destinations(ConfigBody::Replication, xml.as_bytes()).unwrap(),
        vec![]
    );
}

#[test]
fn inventory() {
    let xml = format!(
        "<InventoryConfiguration {NS}><Id>report1</Id><IsEnabled>true</IsEnabled>\
         <Filter><Prefix>hr/</Prefix></Filter>\
         <Destination><S3BucketDestination><AccountId>1</AccountId><Bucket>arn:aws:s3:::inventory-dst</Bucket>\
         <Format>CSV</Format><Prefix>not-the-filter</Prefix></S3BucketDestination></Destination>\
         <Schedule><Frequency>Daily</Frequency></Schedule><IncludedObjectVersions>All</IncludedObjectVersions>\
         </InventoryConfiguration>"
    );
    assert_eq!(
        destinations(ConfigBody::Inventory, xml.as_bytes()).unwrap(),
        vec![dest("inventory-dst", "hr/")]
    );

    let no_filter = "<InventoryConfiguration><Destination><S3BucketDestination><Bucket>arn:aws:s3:::inventory-dst</Bucket>\
                     </S3BucketDestination></Destination></InventoryConfiguration>";
    assert_eq!(
        destinations(ConfigBody::Inventory, no_filter.as_bytes()).unwrap(),
        vec![dest("inventory-dst", "")]
    );

    let refused = [
        ("<InventoryConfiguration><Id>x</Id></InventoryConfiguration>", "MalformedXML", "without <Bucket>"),
        (
            "<InventoryConfiguration><Destination><S3BucketDestination><Bucket>inventory-dst</Bucket>\
             </S3BucketDestination></Destination></InventoryConfiguration>",
            "InvalidArgument",
            "is not arn:aws:s3:::<bucket>",
        ),
        ("<ReplicationConfiguration/>", "MalformedXML", "<InventoryConfiguration>"),
    ];
    for (xml, code, why) in refused {
        assert_refused(
            destinations(ConfigBody::Inventory, xml.as_bytes()),
            400,
            code,
            why,
            xml,
        );
    }
}

#[test]
fn logging() {
    let xml = format!(
        "<BucketLoggingStatus {NS}><LoggingEnabled><TargetBucket>log-bucket</TargetBucket>\
         <TargetPrefix>logs/</TargetPrefix></LoggingEnabled></BucketLoggingStatus>"
    );
    // Access logs describe requests on every key: the prefix is the whole bucket.
    assert_eq!(
        destinations(ConfigBody::Logging, xml.as_bytes()).unwrap(),
        vec![dest("log-bucket", "")]
    );
    // Logging switched off names no bucket.
    let off = format!("<?xml version=\"1.0\" encoding=\"utf-8\"?><BucketLoggingStatus {NS} />");
    assert_eq!(
        destinations(ConfigBody::Logging, off.as_bytes()).unwrap(),
        vec![]
    );

    let refused = [
        ("<BucketLoggingStatus><LoggingEnabled><TargetPrefix>x</TargetPrefix></LoggingEnabled></BucketLoggingStatus>", "MalformedXML", "without <TargetBucket>"),
        (
            "<BucketLoggingStatus><LoggingEnabled><TargetBucket>arn:aws:s3:::log-bucket</TargetBucket></LoggingEnabled></BucketLoggingStatus>",
            "InvalidArgument",
            "is not a bucket name",
        ),
        (
            "<BucketLoggingStatus><LoggingEnabled><TargetBucket>log-bucket</TargetBucket><TargetBucket>other-bucket</TargetBucket></LoggingEnabled></BucketLoggingStatus>",
            "MalformedXML",
            "<TargetBucket> given twice",
        ),
    ];
    for (xml, code, why) in refused {
        assert_refused(
            destinations(ConfigBody::Logging, xml.as_bytes()),
            400,
            code,
            why,
            xml,
        );
    }
}

#[test]
fn analytics() {
    let export = |filter: &str| {
        format!(
            "<AnalyticsConfiguration {NS}><Id>a1</Id>{filter}<StorageClassAnalysis><DataExport>\
             <OutputSchemaVersion>V_1</OutputSchemaVersion><Destination><S3BucketDestination><Format>CSV</Format>\
             <Bucket>arn:aws:s3:::analytics-dst</Bucket><Prefix>out/</Prefix></S3BucketDestination></Destination>\
             </DataExport></StorageClassAnalysis></AnalyticsConfiguration>"
        )
    };
    let cases = [
        (export(""), vec![dest("analytics-dst", "")]),
        (export("<Filter><Prefix>hr/</Prefix></Filter>"), vec![dest("analytics-dst", "hr/")]),
        (export("<Filter><And><Prefix>x/</Prefix><Tag><Key>a</Key><Value>b</Value></Tag></And></Filter>"), vec![dest("analytics-dst", "x/")]),
        // analysis without a data export sends nothing anywhere
        ("<AnalyticsConfiguration><Id>a1</Id><StorageClassAnalysis/></AnalyticsConfiguration>".to_owned(), vec![]),
    ];
    for (xml, want) in cases {
        assert_eq!(
            destinations(ConfigBody::Analytics, xml.as_bytes()).unwrap(),
            want,
            "{xml}"
        );
    }
    let not_arn = export("").replace("arn:aws:s3:::analytics-dst", "analytics-dst");
    assert_refused(
        destinations(ConfigBody::Analytics, not_arn.as_bytes()),
        400,
        "InvalidArgument",
        "arn:aws:s3:::",
        "plain name",
    );
}
