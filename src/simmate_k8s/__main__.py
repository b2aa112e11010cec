from simmate_k8s.cli import main

main()
