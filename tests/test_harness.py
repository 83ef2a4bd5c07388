def test_dag_test_runs_deferred_tasks_inline(run_dag):
    dag_run = run_dag("harness_smoke_deferral")
    assert dag_run.state == "success"
