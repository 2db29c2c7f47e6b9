// module RunQueueClient
