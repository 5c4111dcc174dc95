//! `GET /triggers/v1`: the catalog, filtered, sorted and paged.

use crate::catalog::{Catalog, CatalogEntry};
use crate::query::{Page, TriggerField, TriggerQuery};

pub fn list<'a>(catalog: &'a Catalog, query: &TriggerQuery) -> Page<&'a CatalogEntry> {
    let entries: Vec<&CatalogEntry> = catalog.entries().iter().collect();
    query.apply(&entries, |e, field| {
        Some(match field {
            TriggerField::Id => e.trigger.id.clone(),
            TriggerField::Name => e.trigger.name.clone(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::RawCollection;

    #[test]
    fn filters_by_id_range_and_sorts_by_name() {
        let q = TriggerQuery::parse(&RawCollection {
            filters: Some(r#"id ge "idn:source" and id le "idn:source~""#.into()),
            sorters: Some("-name".into()),
            count: Some("true".into()),
            ..Default::default()
        })
        .unwrap();
        let page = list(Catalog::builtin(), &q);
        let names: Vec<_> = page.items.iter().map(|e| e.trigger.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "Source Updated",
                "Source Deleted",
                "Source Created",
                "Source Account Updated",
                "Source Account Deleted",
                "Source Account Created"
            ]
        );
        assert_eq!(page.total, Some(6));
    }
}
