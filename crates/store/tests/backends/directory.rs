//! The store's directory, on every backend.

#[allow(unused_imports)]
use crate::common::each_backend;

#[tokio::test]
async fn a_setting_is_set_once_and_kept() {
    each_backend(|store| async move {
        assert_eq!(store.get_setting("secret").await.expect("read"), None);
        let first = store
            .set_setting_if_absent("secret", "one")
            .await
            .expect("set");
        assert_eq!(first, "one");
        let second = store
            .set_setting_if_absent("secret", "two")
            .await
            .expect("set again");
        assert_eq!(second, "one", "the first value stays");
        assert_eq!(
            store.get_setting("secret").await.expect("read"),
            Some("one".into())
        );
    })
    .await;
}
