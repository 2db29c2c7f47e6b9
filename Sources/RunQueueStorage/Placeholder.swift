// module RunQueueStorage
