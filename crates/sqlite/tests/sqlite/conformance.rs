//! The shared store conformance suite (`tokenwarden-conformance`), run against the SQLite store.

/// On `sqlite::memory:`: the suite's own macro, so a case added to the suite runs here unasked.
mod in_memory {
    tokenwarden_conformance::conformance_suite!(async {
        tokenwarden_sqlite::SqliteStore::open("sqlite::memory:")
            .await
            .unwrap()
    });
}

/// On a database file, where reads and writes go through separate pools (the production
/// configuration). The suite's macro cannot keep the temporary file alive for the case and remove
/// it afterwards, so the cases are listed here; a case the suite adds later runs in `in_memory`
/// until it is added to this list.
mod on_file {
    use crate::support::TempDb;

    macro_rules! on_file {
        ($($case:ident),* $(,)?) => {$(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let db = TempDb::new(concat!("conformance-", stringify!($case)));
                let store = db.open().await;
                // A clone shares the pools; ours closes them before the file is removed.
                tokenwarden_conformance::$case(store.clone()).await;
                store.close().await;
            }
        )*};
    }

    on_file!(
        created_client_is_found_with_every_field,
        create_client_with_taken_id_conflicts,
        list_clients_is_ordered_by_client_id,
        set_client_secret_replaces_digest_or_reports_missing_client,
        delete_client_revokes_its_grants_and_grantless_tokens,
        delete_missing_client_returns_none,
        created_user_is_found_by_name,
        create_user_with_taken_name_conflicts,
        inserted_access_token_is_found_by_digest,
        insert_access_token_with_existing_digest_fails,
        create_grant_with_refresh_stores_all_three,
        create_grant_without_refresh_stores_no_refresh_token,
        create_grant_is_all_or_nothing,
        revoking_grant_makes_its_tokens_read_revoked,
        revoke_grant_returns_true_once_then_false,
        revoke_access_token_is_idempotent_and_leaves_grant_alone,
        revoke_access_token_keeps_the_first_revocation_time,
        rotate_rotates_once_then_reports_not_rotated,
        rotate_unknown_digest_is_unknown,
        rotate_at_or_after_expiry_is_not_rotated,
        rotate_revoked_token_is_not_rotated,
        rotation_stamps_grant_last_refreshed_at,
        concurrent_rotations_of_one_token_rotate_exactly_once,
        list_grants_filters_and_orders_oldest_first,
        revoke_grants_by_user_or_client_counts_active_grants,
        purge_removes_expired_access_and_refresh_tokens,
        purge_keeps_used_but_unexpired_refresh_tokens,
        purge_removes_long_revoked_rows_but_not_recent_ones,
        purge_removes_grants_left_without_tokens,
        purge_dry_run_counts_the_same_and_deletes_nothing,
        purge_processes_more_rows_than_batch_size,
    );
}
